// Headless Chromium for tests that drive a page: Debian's chromium (installed by
// `bash scripts/setup.sh --test`), launched by playwright-core, which never downloads a browser.
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Generous: the machine has 2 cores and other test files run alongside. */
export const BROWSER_TIMEOUT_MS = 30000;

// Without the background-networking flags Chromium tries to reach Google (there is no network
// here); tests run as root, hence --no-sandbox.
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(
      `Chromium is not installed at ${CHROMIUM_PATH}; the browser tests need Debian's chromium: run \`bash scripts/setup.sh --test\`.`,
    );
  }
  try {
    return await chromium.launch({ executablePath: CHROMIUM_PATH, args: ARGS, timeout: BROWSER_TIMEOUT_MS });
  } catch (error) {
    throw new Error(
      `Chromium at ${CHROMIUM_PATH} did not start (run \`bash scripts/setup.sh --test\` to install Debian's chromium): ${(error as Error).message}`,
      { cause: error },
    );
  }
}

/**
 * Registers before/after hooks that launch Chromium for this test file and close it, and
 * returns a handle whose `browser` is there once `before` has run. Register it before
 * useTestApp(): `after` hooks run in the order they were registered, so the browser lets go
 * of its connections before the app closes.
 *
 * A browser that cannot start does not fail the `before` hook: under a describe() that makes
 * node:test skip the `after` hooks, which leaves the test's redis-server and app running and
 * the file never ends. Reading `browser` throws the launch error instead, so the test fails
 * with it (naming `bash scripts/setup.sh --test`) and everything is still shut down.
 */
export function useBrowser(): { readonly browser: Browser } {
  let browser: Browser | undefined;
  let launchError: unknown = new Error('useBrowser(): the browser is only there once the before hook has run');
  before(async () => {
    try {
      browser = await launchChromium();
    } catch (error) {
      launchError = error;
    }
  });
  after(async () => {
    await browser?.close();
  });
  return {
    get browser(): Browser {
      if (browser === undefined) throw launchError;
      return browser;
    },
  };
}

export interface PageProblems {
  /** Uncaught exceptions in the page. */
  pageErrors: string[];
  /** Requests to `origin` that failed at the network level. */
  failedRequests: string[];
  /** Responses >= 400 to requests for `origin` whose path starts with one of `assetPrefixes`. */
  failedAssets: string[];
  /** Requests that left `origin` (a CDN, Google): nothing may, the machine has no network. */
  foreignRequests: string[];
  /** console.error messages, for diagnostics only. */
  consoleErrors: string[];
}

/** Records what goes wrong in a page that should only ever talk to `origin`. */
export function watchPage(page: Page, origin: string, assetPrefixes: string[]): PageProblems {
  const problems: PageProblems = { pageErrors: [], failedRequests: [], failedAssets: [], foreignRequests: [], consoleErrors: [] };
  const ours = (url: string) => new URL(url).origin === origin;
  page.on('pageerror', (error) => problems.pageErrors.push(error.stack ?? error.message));
  page.on('console', (message) => {
    if (message.type() === 'error') problems.consoleErrors.push(message.text());
  });
  page.on('request', (request) => {
    const url = request.url();
    if (/^https?:/.test(url) && !ours(url)) problems.foreignRequests.push(`${request.method()} ${url}`);
  });
  page.on('requestfailed', (request) => {
    if (ours(request.url())) problems.failedRequests.push(`${request.method()} ${request.url()}: ${request.failure()?.errorText}`);
  });
  page.on('response', (response) => {
    const url = new URL(response.url());
    if (url.origin === origin && response.status() >= 400 && assetPrefixes.some((prefix) => url.pathname.startsWith(prefix))) {
      problems.failedAssets.push(`${response.status()} ${response.request().method()} ${response.url()}`);
    }
  });
  return problems;
}

/**
 * Runs `body`; if it throws, saves a full-page screenshot to a temporary file and adds its
 * path to the error (and prints it), then rethrows.
 */
export async function screenshotOnFailure<T>(page: Page, name: string, body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (error) {
    const file = join(mkdtempSync(join(tmpdir(), 'lease-browser-')), `${name}.png`);
    let note: string;
    try {
      await page.screenshot({ path: file, fullPage: true, timeout: BROWSER_TIMEOUT_MS });
      note = `screenshot of the page: ${file}`;
    } catch (screenshotError) {
      note = `no screenshot (${(screenshotError as Error).message})`;
    }
    console.error(`[${name}] ${note}`);
    if (error instanceof Error) error.message += `\n${note}`;
    throw error;
  }
}
