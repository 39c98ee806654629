/**
 * Tour step: file transfer. A folder served and downloaded with every file verified, an
 * interrupted file resumed (only the missing bytes travel, the whole file is verified), a
 * hostile path refused, an existing file protected, and the raw mode that `nc` speaks.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TourStep } from './tour.js';
import { connect } from '../net/connect.js';
import { formatEndpoint, type Endpoint } from '../net/endpoint.js';
import { formatBytes } from '../cli/report.js';
import { nativeStatus } from '../native/helper.js';
import { Link, download, downloadRaw, startFileServer, startReceiveServer, summaryError } from '../transfer/index.js';
import { partialPath } from '../transfer/place.js';

const LOOPBACK: Endpoint = { kind: 'inet', host: '127.0.0.1', port: 0 };

export const transferStep: TourStep = {
  title: 'File transfer: folders verified by SHA-256, resume, refused paths, raw mode for nc',
  async run({ row, tmp }) {
    const root = join(tmp, 'transfer');
    const src = join(root, 'photos');
    await mkdir(join(src, '2024', 'summer'), { recursive: true });
    await mkdir(join(src, 'empty'));
    await writeFile(join(src, 'README.txt'), 'Holiday photos\n');
    await writeFile(join(src, '2024', 'beach.raw'), randomBytes(24 * 1024 * 1024));
    await writeFile(join(src, '2024', 'summer', 'sunset.raw'), randomBytes(6 * 1024 * 1024));
    await writeFile(join(src, '2024', 'summer', 'empty.txt'), '');

    const server = await startFileServer(LOOPBACK, { paths: [src] });
    try {
      const where = formatEndpoint(server.endpoint);
      const copy = join(root, 'copy');
      const s = await download(server.endpoint, { dir: copy });
      if (summaryError(s)) throw summaryError(s)!;
      row(where, `serve, get: ${s.files} files and ${s.dirs} folders (${formatBytes(s.bytes)}), each SHA-256 checked and fsynced, in ${s.seconds.toFixed(2)} s`);

      // An interrupted download: half of beach.raw already sits in its partial file.
      const resumeDir = join(root, 'resume');
      const beach = await readFile(join(src, '2024', 'beach.raw'));
      await mkdir(join(resumeDir, 'photos', '2024'), { recursive: true });
      await writeFile(partialPath(join(resumeDir, 'photos', '2024', 'beach.raw')), beach.subarray(0, beach.length / 2));
      const r = await download(server.endpoint, { dir: resumeDir });
      if (summaryError(r)) throw summaryError(r)!;
      if (r.transferred >= r.bytes) throw new Error('the partial file was not resumed: every byte crossed the wire again');
      row('', `resume: with .beach.raw.sk-partial holding ${formatBytes(beach.length / 2)}, ${formatBytes(r.transferred)} of ${formatBytes(r.bytes)} crossed the wire; the whole file was verified`);

      // Nothing is overwritten without --force.
      const again = await download(server.endpoint, { dir: copy });
      row('', `get again into the same folder: ${again.failures.length} files refused (${again.failures[0]?.code ?? 'none'}), nothing overwritten`);
      if (again.files !== 0) throw new Error('existing files were overwritten');
    } finally {
      await server.close();
    }

    // A hostile sender offering a path that climbs out of the target folder.
    const inbox = join(root, 'inbox');
    const drop = await startReceiveServer(LOOPBACK, { dir: inbox });
    try {
      const link = new Link(await connect(drop.endpoint), { peer: formatEndpoint(drop.endpoint) });
      try {
        link.sendHello('sender', { entries: 1 });
        await link.readHello();
        link.send({ type: 'offer', id: 0, kind: 'file', path: '../../etc/cron.d/evil', size: 10, mode: 0o644, mtimeMs: 0 });
        const reply = await link.next();
        if (reply?.type !== 'reply' || reply.action !== 'skip') throw new Error('an unsafe path was accepted');
        row(formatEndpoint(drop.endpoint), `a sender offering '../../etc/cron.d/evil' is refused: ${reply.code}`);
      } finally {
        link.destroy();
      }
    } finally {
      await drop.close();
    }

    // Raw mode: the bytes of one file, then close — what `nc HOST PORT > out` receives.
    let zeroCopy: boolean | undefined;
    const raw = await startFileServer(LOOPBACK, {
      paths: [join(src, '2024', 'beach.raw')],
      raw: true,
      onEvent: (e) => {
        if (e.event === 'disconnect' && e.raw) zeroCopy = e.raw.zeroCopy === true;
      },
    });
    try {
      const got = await downloadRaw(raw.endpoint, join(root, 'beach-raw.bin'));
      await raw.close();
      const how = zeroCopy ? 'sent with sendfile (no copy in user space)' : `sent with reads and writes (${nativeStatus().reason ?? 'no native helper'})`;
      row(formatEndpoint(raw.endpoint), `serve --raw, get --raw: ${formatBytes(got.bytes)}, the file's bytes and a close, as \`nc HOST PORT > out\` receives them; ${how}`);
    } finally {
      await raw.close();
    }
  },
};
