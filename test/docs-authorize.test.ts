// Swagger UI's Authorize button at /docs with access control on (AUTH=on), in headless
// Chromium: Try it out without a token is answered 401; an operator's service token typed
// into the bearerAuth dialog is sent as `Authorization: Bearer <token>` and the same call is
// answered 200; after Logout, a reader's token is refused 403 on POST /v1/leases, and no
// lease was made. Swagger UI shows each status as the server response.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Locator, Page, Request, Response } from 'playwright-core';
import { ServiceTokens, tokenKeys } from '../src/auth/service-tokens.js';
import { useTestApp } from './helpers/app.js';
import { BROWSER_TIMEOUT_MS, screenshotOnFailure, useBrowser, watchPage } from './helpers/browser.js';

// Browser first: `after` hooks run in registration order, so it closes before the app does.
const b = useBrowser();
const { t } = useTestApp({ env: { AUTH: 'on' } });

/** The operation `method path` in the "leases" section of the page. */
function leaseOperation(page: Page, method: 'get' | 'post', path: string): Locator {
  const leases = page.locator('.opblock-tag-section', { has: page.locator('h3.opblock-tag[data-tag="leases"]') });
  return leases.locator(`.opblock.opblock-${method}`, { has: page.locator(`.opblock-summary-path[data-path="${path}"]`) });
}

/** Clicks Execute and returns the browser's own request for `method path` and its response. */
async function execute(page: Page, operation: Locator, method: string, path: string): Promise<{ request: Request; response: Response }> {
  const sent = page.waitForRequest((request) => new URL(request.url()).pathname === path && request.method() === method);
  await operation.getByRole('button', { name: 'Execute' }).click();
  const request = await sent;
  const response = await request.response();
  assert.ok(response, `the browser's ${method} ${path} got a response`);
  return { request, response };
}

/**
 * What Swagger UI shows as the server response once it reads `status` (an earlier Execute's
 * row stays until the new answer replaces it): the status and the problem's code.
 */
async function shownResponse(operation: Locator, status: number): Promise<{ status: string; code: unknown }> {
  const live = operation.locator('.responses-wrapper .live-responses-table tr.response');
  const cell = live.locator('.response-col_status', { hasText: new RegExp(`^\\s*${status}\\b`) });
  await cell.waitFor();
  const body = JSON.parse((await live.locator('.response-col_description .highlight-code pre').first().textContent()) ?? '') as { code?: unknown };
  return { status: (await cell.textContent())?.trim() ?? '', code: body.code };
}

/**
 * Opens the page's Authorize dialog, logs out of bearerAuth if a token is there, types
 * `token` into its value field, applies it and closes the dialog.
 */
async function authorize(page: Page, token: string): Promise<void> {
  await page.locator('.scheme-container .btn.authorize').click();
  const dialog = page.locator('.modal-ux .auth-container', { has: page.locator('h4 code', { hasText: /^bearerAuth$/ }) });
  await dialog.waitFor();
  const logout = dialog.getByRole('button', { name: 'Remove authorization' });
  if (await logout.isVisible()) await logout.click();
  await dialog.locator('input#auth-bearer-value').fill(token);
  await dialog.getByRole('button', { name: 'Apply credentials' }).click();
  // Applied: the dialog says so, masks the value and offers Logout in place of Authorize.
  await dialog.locator('h6', { hasText: 'Authorized' }).waitFor();
  await logout.waitFor();
  await dialog.locator('.auth-btn-wrapper .btn-done').click();
  await page.locator('.modal-ux').waitFor({ state: 'detached' });
  await page.locator('.scheme-container .btn.authorize.locked').waitFor();
}

describe('Swagger UI at /docs with access control on', () => {
  test('Try it out is 401 without a token, 200 with an operator\'s typed into Authorize, and 403 for a reader\'s acquire', { timeout: 8 * BROWSER_TIMEOUT_MS }, async () => {
    const tokens = new ServiceTokens(t.redis, tokenKeys(t.config.KEY_PREFIX));
    const operator = (await tokens.create({ role: 'operator', namespaces: '*' })).token;
    const reader = (await tokens.create({ role: 'reader', namespaces: '*' })).token;

    const page = await b.browser.newPage();
    page.setDefaultTimeout(BROWSER_TIMEOUT_MS);
    page.setDefaultNavigationTimeout(BROWSER_TIMEOUT_MS);
    const problems = watchPage(page, t.baseUrl, ['/docs', '/openapi.json']);
    try {
      await screenshotOnFailure(page, 'docs-authorize', async () => {
        // /docs itself stays public (AUTH_DOCS=public): the page renders with no token.
        await page.goto(`${t.baseUrl}/docs`);
        await page.locator('.information-container .info .title').waitFor();

        // 1. GET /v1/leases, Try it out, Execute before authorizing: no token is sent, 401.
        const list = leaseOperation(page, 'get', '/v1/leases');
        await list.locator('.opblock-summary-control').click();
        await list.getByRole('button', { name: 'Try it out' }).click();
        const anonymous = await execute(page, list, 'GET', '/v1/leases');
        assert.equal((await anonymous.request.allHeaders()).authorization, undefined, 'no Authorization header before Authorize');
        assert.equal(anonymous.response.status(), 401, 'the browser\'s GET /v1/leases without a token was answered 401');
        assert.deepEqual(await shownResponse(list, 401), { status: '401', code: 'unauthorized' }, 'Swagger UI shows the 401');

        // 2. Authorize: the operator's token typed into the bearerAuth value field.
        await authorize(page, operator);

        // 3. Execute again: the same call now carries the token and is answered 200.
        const authorized = await execute(page, list, 'GET', '/v1/leases');
        assert.equal(authorized.request.headers().authorization, `Bearer ${operator}`, 'the browser sends the operator\'s token');
        assert.equal(authorized.response.status(), 200, 'the browser\'s GET /v1/leases with the operator\'s token was answered 200');
        assert.deepEqual(await shownResponse(list, 200), { status: '200', code: undefined }, 'Swagger UI shows the 200');

        // 4. Logout, authorize a reader's token the same way: Try it out on POST /v1/leases is 403.
        await authorize(page, reader);
        const acquire = leaseOperation(page, 'post', '/v1/leases');
        await acquire.locator('.opblock-summary-control').click();
        await acquire.getByRole('button', { name: 'Try it out' }).click();
        const refused = await execute(page, acquire, 'POST', '/v1/leases');
        assert.equal(refused.request.headers().authorization, `Bearer ${reader}`, 'the browser sends the reader\'s token, not the operator\'s');
        assert.equal(refused.response.status(), 403, 'the browser\'s POST /v1/leases with a reader\'s token was answered 403');
        assert.deepEqual(await shownResponse(acquire, 403), { status: '403', code: 'forbidden' }, 'Swagger UI shows the 403');

        // From outside the browser: the refused acquire made no lease.
        const leases = await t.app.inject({ method: 'GET', url: '/v1/leases', headers: { authorization: `Bearer ${operator}` } });
        assert.equal(leases.statusCode, 200, leases.body);
        assert.deepEqual(leases.json<{ items: unknown[] }>().items, [], 'no lease exists');

        // 5. Nothing broke: no page errors, every asset from this service (no CDN), none failed.
        assert.deepEqual(problems.pageErrors, [], 'no uncaught errors in the page');
        assert.deepEqual(problems.failedRequests, [], 'no request to the service failed');
        assert.deepEqual(problems.failedAssets, [], 'every /docs asset loaded');
        assert.deepEqual(problems.foreignRequests, [], 'the page asked nothing of any other origin');
      });
    } catch (error) {
      if (problems.consoleErrors.length > 0 && error instanceof Error) {
        error.message += `\nconsole errors in the page:\n  ${problems.consoleErrors.join('\n  ')}`;
      }
      throw error;
    } finally {
      await page.close();
    }
  });
});
