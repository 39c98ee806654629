// The README is the user's guide: a merge once appended a second copy of half of it. Every
// top-level section appears once, and within a section every sub-heading appears once.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const readme = readFileSync(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8');

/** Headings outside fenced code blocks, as [level, text]. */
function headings(text: string): Array<[number, string]> {
  const out: Array<[number, string]> = [];
  let fenced = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced;
    const m = fenced ? null : /^(#{1,4}) (.+)$/.exec(line);
    if (m?.[1] !== undefined && m[2] !== undefined) out.push([m[1].length, m[2].trim()]);
  }
  return out;
}

describe('README structure', () => {
  it('has each section once, and each sub-heading once within its section', () => {
    const seen = new Set<string>();
    let section = '';
    const duplicates: string[] = [];
    for (const [level, text] of headings(readme)) {
      if (level <= 2) section = text;
      const key = level <= 2 ? text : `${section} > ${text}`;
      if (seen.has(key)) duplicates.push(key);
      seen.add(key);
    }
    assert.deepEqual(duplicates, []);
  });

  it('finds the headings it checks (the check cannot pass on an empty list)', () => {
    const top = headings(readme).filter(([level]) => level === 2).map(([, t]) => t);
    for (const name of ['Commands', 'Library API', 'Benchmarks']) assert.ok(top.includes(name), name);
  });
});
