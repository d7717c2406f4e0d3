import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { verifyReturnPath } from '../../libs/mail/verp.ts';
import { classifyReport } from '../../services/bounce/classify.ts';
import { parseReport } from '../../services/bounce/report-parser.ts';

interface Expected {
  readonly error?: string;
  readonly type?: string;
  readonly format?: string;
  readonly source?: string;
  readonly findings?: readonly {
    address: string;
    kind: string;
    status: string | null;
    smtpCode: number | null;
  }[];
  readonly ignored?: readonly { address: string | null; why: string }[];
  readonly returnPath?: string;
  readonly sendId?: string;
}

const DIR = new URL('../fixtures/bounces/', import.meta.url);
const manifest = JSON.parse(readFileSync(new URL('manifest.json', DIR), 'utf8')) as Record<string, Expected>;
const samples = readdirSync(DIR).filter((f) => f.endsWith('.eml'));

/** The samples' return paths are genuine tokens, signed with this key on 2026-11-20 at 09:00 UTC. */
const FIXTURE_KEY = { id: 1, secret: 'fixture-key' };
const FIXTURE_ISSUED = Date.parse('2026-11-20T09:00:00Z');

describe('bounce corpus', () => {
  test('holds at least 20 samples, each with an expectation in the manifest', () => {
    assert.ok(samples.length >= 20, `${samples.length} samples`);
    assert.deepEqual([...samples].sort(), Object.keys(manifest).sort());
  });

  test('their return paths carry genuine VERP tokens, so end-to-end tests can replay them', () => {
    const returnPaths = new Set(Object.values(manifest).flatMap((e) => (e.returnPath ? [e.returnPath] : [])));
    assert.ok(returnPaths.size > 0);
    for (const address of returnPaths) {
      const verified = verifyReturnPath(address, [FIXTURE_KEY], {
        now: FIXTURE_ISSUED,
        maxAgeMs: 86_400_000,
      });
      assert.ok(verified.ok, `${address}: ${JSON.stringify(verified)}`);
    }
  });

  for (const file of samples) {
    test(file, async () => {
      const expected = manifest[file]!;
      const parsed = await parseReport(readFileSync(new URL(file, DIR)));
      if (expected.error) {
        assert.equal(parsed.ok, false, 'expected a parse failure');
        assert.equal(!parsed.ok && parsed.reason, expected.error);
        assert.ok(!parsed.ok && parsed.detail.length > 0, 'a failure explains itself for the DLQ');
        return;
      }
      assert.ok(parsed.ok, JSON.stringify(parsed));
      const { report } = parsed;
      assert.equal(report.type, expected.type);
      if (expected.format) assert.equal(report.type === 'delivery-status' && report.format, expected.format);

      const classified = classifyReport(report);
      assert.equal(classified.source, expected.source);
      assert.deepEqual(
        classified.findings.map(({ address, kind, status, smtpCode }) => ({
          address,
          kind,
          status,
          smtpCode,
        })),
        expected.findings ?? [],
      );
      for (const f of classified.findings) assert.ok(f.diagnostic, `${f.address} keeps its diagnostic`);
      assert.deepEqual(classified.ignored, expected.ignored ?? []);
      if (expected.returnPath) assert.equal(classified.original?.returnPath, expected.returnPath);
      if (expected.sendId)
        assert.equal(classified.original?.tidingsHeaders['x-tidings-send-id'], expected.sendId);
    });
  }
});
