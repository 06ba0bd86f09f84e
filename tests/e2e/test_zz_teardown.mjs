// Last of the e2e suite: stops the shared test gateway (after stopping its
// sessions and sandboxes) and checks that no QEMU of it is left behind and
// that its log holds no sanitizer report.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stopPid, stopSharedGateway } from './lib/gateway.mjs';

test('stop the test gateway and leave no VM behind', { timeout: 600_000 }, async () => {
  if (process.env.PORTHOLE_E2E_URL) {
    console.error('PORTHOLE_E2E_URL: the gateway is not ours to stop');
    return;
  }
  const { leftovers, sanitizerReports } = await stopSharedGateway();
  for (const pid of leftovers)
    await stopPid(pid, 5000);
  assert.deepEqual(leftovers, [], 'QEMU processes outlived their gateway (killed now)');
  // Under the ASan/UBSan build the whole e2e run exercised the gateway: its
  // reports land in its log, which nobody else reads.
  assert.deepEqual(sanitizerReports, [], 'sanitizer reports in STATE/gateway.log');
});
