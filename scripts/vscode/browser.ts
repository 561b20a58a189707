/**
 * Chromium for driving the code-server workbench, through playwright-core (no browser download:
 * Debian's /usr/bin/chromium). A fresh profile per run; flags from ENVIRONMENT.md: without the
 * background-networking ones Chromium keeps dialling Google on a closed network.
 */
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { log } from './common';

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox', // we run as root in CI containers; the sandbox refuses root
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage', // containers often have a 64 MB /dev/shm
];

export interface Browser {
  context: BrowserContext;
  page: Page;
  /** Console lines seen on the page, for failure reports. */
  consoleLines: string[];
  close(): Promise<void>;
}

export async function launchBrowser(executablePath: string, profileDir: string, opts: { width?: number; height?: number } = {}): Promise<Browser> {
  const context = await chromium.launchPersistentContext(profileDir, {
    executablePath,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: opts.width ?? 1400, height: opts.height ?? 900 },
    // The workbench asks for clipboard access on copy; never block on a permission prompt.
    permissions: ['clipboard-read', 'clipboard-write'],
    timeout: 60_000,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const consoleLines: string[] = [];
  page.on('console', (m) => {
    consoleLines.push(`[${m.type()}] ${m.text()}`);
    if (consoleLines.length > 2000) consoleLines.shift();
  });
  page.on('pageerror', (e) => consoleLines.push(`[pageerror] ${e.message}`));
  let closed = false;
  return {
    context,
    page,
    consoleLines,
    close: async () => {
      if (closed) return;
      closed = true;
      // Playwright kills the browser's process group itself; bound the wait in case it hangs.
      await Promise.race([context.close().catch(() => undefined), new Promise((r) => setTimeout(r, 10_000))]);
    },
  };
}

/** Waits for the workbench shell to render (code-server serves it in about a second). */
export async function waitForWorkbench(page: Page, timeoutMs = 60_000): Promise<void> {
  const t0 = Date.now();
  await page.waitForSelector('.monaco-workbench', { timeout: timeoutMs });
  log(`workbench rendered in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}
