// Swagger UI at /docs in headless Chromium (Debian's chromium driven by playwright-core):
// the page renders from assets the service serves itself, lists the lease operations, and
// "Try it out" on POST /v1/leases reaches the service and grants a lease (201), which is then
// read back from outside the browser.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Lease } from '../src/client/types.js';
import { useTestApp } from './helpers/app.js';
import { BROWSER_TIMEOUT_MS, screenshotOnFailure, useBrowser, watchPage } from './helpers/browser.js';

// Browser first: `after` hooks run in registration order, so it closes before the app does.
const b = useBrowser();
const { t } = useTestApp();

describe('Swagger UI at /docs', () => {
  test('lists the lease operations, and Try it out on POST /v1/leases grants a lease (201)', { timeout: 6 * BROWSER_TIMEOUT_MS }, async () => {
    const page = await b.browser.newPage();
    page.setDefaultTimeout(BROWSER_TIMEOUT_MS);
    page.setDefaultNavigationTimeout(BROWSER_TIMEOUT_MS);
    const problems = watchPage(page, t.baseUrl, ['/docs', '/openapi.json']);
    try {
      await screenshotOnFailure(page, 'docs-try-it-out', async () => {
        // 1. The page renders: the API's title, then the "leases" tag with its operations.
        await page.goto(`${t.baseUrl}/docs`);
        const title = page.locator('.information-container .info .title');
        await title.waitFor();
        assert.match((await title.textContent()) ?? '', /^Lease service\b/, 'the API title shows in Swagger UI');

        const leases = page.locator('.opblock-tag-section', { has: page.locator('h3.opblock-tag[data-tag="leases"]') });
        await leases.locator('.opblock').first().waitFor();
        const listed = await leases.locator('.opblock').evaluateAll((blocks) =>
          blocks.map((block) => {
            const method = block.querySelector('.opblock-summary-method')?.textContent?.trim();
            const path = block.querySelector('.opblock-summary-path')?.getAttribute('data-path');
            return `${method} ${path}`;
          }),
        );
        for (const operation of [
          'POST /v1/leases',
          'POST /v1/leases/{id}/renew',
          'POST /v1/leases/{id}/release',
          'GET /v1/leases/{id}',
          'DELETE /v1/leases/{id}',
          'GET /v1/leases',
        ]) {
          assert.ok(listed.includes(operation), `the leases section lists ${operation}; it lists ${listed.join(', ')}`);
        }

        // 2. Expand POST /v1/leases, Try it out: the body starts as the first named example.
        const acquire = leases.locator('.opblock.opblock-post', { has: page.locator('.opblock-summary-path[data-path="/v1/leases"]') });
        await acquire.locator('.opblock-summary-control').click();
        await acquire.getByRole('button', { name: 'Try it out' }).click();
        const body = JSON.parse(await acquire.locator('textarea.body-param__text').inputValue()) as { holder: string; resources: { path: string }[] };
        assert.equal(body.holder, 'conductor-z', 'Try it out starts with the "instance" example');
        assert.deepEqual(body.resources.map((r) => r.path), ['instances/i-42']);

        // Execute; the browser's own request must reach the service and be answered 201.
        const sent = page.waitForResponse(
          (response) => response.url() === `${t.baseUrl}/v1/leases` && response.request().method() === 'POST',
        );
        await acquire.getByRole('button', { name: 'Execute' }).click();
        assert.equal((await sent).status(), 201, 'the browser\'s POST /v1/leases was answered 201');

        // 3. What Swagger UI shows: the live response's status, and its body with the lease.
        const live = acquire.locator('.responses-wrapper .live-responses-table tr.response');
        const status = live.locator('.response-col_status');
        await status.waitFor();
        assert.equal((await status.textContent())?.trim(), '201', 'Swagger UI shows 201 as the server response');
        const shown = JSON.parse((await live.locator('.response-col_description .highlight-code pre').first().textContent()) ?? '') as Lease;
        assert.equal(typeof shown.id, 'string');
        assert.equal(shown.holder, 'conductor-z');

        // 4. From outside the browser: the lease the click made exists.
        const read = await t.get(`/v1/leases/${encodeURIComponent(shown.id)}`);
        assert.equal(read.statusCode, 200, read.body);
        const lease = read.json<Lease>();
        assert.equal(lease.id, shown.id);
        assert.equal(lease.state, 'active');
        assert.equal(lease.holder, 'conductor-z');
        assert.deepEqual(lease.resources.map((r) => r.path), ['instances/i-42']);

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
