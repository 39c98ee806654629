/**
 * A socketkit HTML report opened in headless Chromium (Debian's, through playwright-core), as the
 * browser checks need it: every request and every console error or warning recorded, and the
 * page drawn (its script sets `data-rendered` on <body> when every chart is). The browser is
 * closed when the test ends.
 */
import { pathToFileURL } from 'node:url';
import type { Page } from 'playwright-core';
import type { CleanupContext } from './tmp.js';

export interface OpenedReport {
  readonly tab: Page;
  /** The page's own address, the only request it should make. */
  readonly url: string;
  /** Every URL the page asked for. */
  readonly requests: string[];
  /** Console errors and warnings, and page errors. */
  readonly problems: string[];
}

export async function openReport(t: CleanupContext, chromium: string, html: string): Promise<OpenedReport> {
  const { chromium: pw } = await import('playwright-core');
  const browser = await pw.launch({ executablePath: chromium, headless: true, args: ['--no-sandbox', '--disable-background-networking'] });
  t.after(() => browser.close());
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const tab = await context.newPage();
  const requests: string[] = [];
  const problems: string[] = [];
  context.on('request', (req) => requests.push(req.url()));
  tab.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`);
  });
  tab.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  const url = pathToFileURL(html).href;
  await tab.goto(url, { waitUntil: 'load', timeout: 30_000 });
  await tab.locator('body[data-rendered]').waitFor({ state: 'attached', timeout: 30_000 }).catch((e: unknown) => {
    throw new Error(`the page did not finish drawing: ${problems.join('; ') || String(e)}`);
  });
  return { tab, url, requests, problems };
}
