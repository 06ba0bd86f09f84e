// Downloads: with allow_downloads false a download link produces no file;
// with allow_downloads true the same click produces the file, listed by
// GET /v1/browser/sessions/{id}/downloads and fetchable from there.
import assert from 'node:assert/strict';
import { e2eTest } from './lib/e2e.mjs';
import { connectPlaywright, disconnect } from './lib/cdp.mjs';
import { CdpClient } from './lib/cdp_raw.mjs';
import { sleep, waitFor } from './lib/util.mjs';

const nameOf = (d) => (typeof d === 'string' ? d : d?.name);

async function downloads(gw, id) {
  const r = await gw.api('GET', `/v1/browser/sessions/${id}/downloads`);
  assert.ok(Array.isArray(r.body?.downloads), `downloads list: ${JSON.stringify(r.body)}`);
  return r.body.downloads;
}

async function clickDownload(pages, s, tag) {
  const { browser, page } = await connectPlaywright(s.cdp_url);
  try {
    await page.goto(`${pages.guestUrl}/download?tag=${tag}`, { timeout: 120_000 });
    await page.click('#dl');
    // The click reaches the server in both cases; what differs is the file.
    await waitFor(() => pages.hits('/files/report.txt').some((r) => r.query.tag === tag),
                  { timeoutMs: 60_000, message: `the download request (${tag})` });
    await sleep(1000);
  } finally {
    await disconnect(browser);
  }
}

e2eTest('allow_downloads false: no file; true: the file is listed and fetchable',
        async ({ gw, pages, sessions }) => {
  const [denied, allowed] = await Promise.all([
    sessions.create({ allow_downloads: false }),
    sessions.create({ allow_downloads: true }),
  ]);

  // The gateway points a client's download folder at the guest's: a
  // message that grows by that rewrite is still forwarded and answered.
  const raw = await CdpClient.connect(allowed.cdp_ws_url);
  try {
    const r = await raw.send('Browser.setDownloadBehavior', { behavior: 'allow', downloadPath: '/d' });
    assert.deepEqual(r, {}, `setDownloadBehavior answered ${JSON.stringify(r)}`);
    const v = await raw.send('Browser.getVersion');
    assert.ok(v.product, 'the same connection still answers after the rewrite');
  } finally {
    raw.ws.close();
  }

  await clickDownload(pages, allowed, 'allowed');
  const list = await waitFor(async () => {
    const l = await downloads(gw, allowed.session_id);
    return l.length > 0 && l;
  }, { timeoutMs: 60_000, intervalMs: 1000, message: 'the download in the list' });
  assert.equal(list.length, 1, JSON.stringify(list));
  const name = nameOf(list[0]);
  assert.ok(name, `a listed download has a name: ${JSON.stringify(list[0])}`);
  const file = await gw.api('GET', `/v1/browser/sessions/${allowed.session_id}/downloads/${encodeURIComponent(name)}`);
  assert.equal(file.raw.toString('utf8'), pages.downloadBody, 'the fetched file is what the server sent');
  if (name !== 'report.txt')
    console.error(`download listed as ${name}, not report.txt`);

  await clickDownload(pages, denied, 'denied');
  await sleep(5000);   // as long as the allowed one took to show up, and more
  assert.deepEqual(await downloads(gw, denied.session_id), []);
  const missing = await gw.api('GET', `/v1/browser/sessions/${denied.session_id}/downloads/report.txt`,
                               undefined, { expect: null });
  assert.notEqual(missing.status, 200, 'no file to fetch from the session without downloads');
});
