// Old configs keep their meaning: every golden config (two-route configs as the suite had them,
// Screwdriver's `exclusion` alias included) gives, for every executor fixture, the response the
// two-route version gave (test/golden/answers.json, written by test/golden/generate.ts before
// routes became data). Two values are bookkeeping and not compared: the config hash (the
// normalised config has more fields now) and the submitted-value memory (it now also remembers
// the route's own annotations, so that a re-routed pod loses them).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { reviewAdmission } from '../src/admission/review.js';
import { reviewForPod } from '../src/cli/explanation.js';
import { goldenCases } from './golden/cases.js';
import { policyFrom } from './helpers.js';

const golden = JSON.parse(readFileSync(new URL('golden/answers.json', import.meta.url), 'utf8')) as Record<
  string,
  unknown
>;
function withoutHash(value: unknown) {
  const text = JSON.stringify(value).replace(
    /("kata-admission\.screwdriver\.cd\/config":")[0-9a-f]{12}"/g,
    '$1HASH"',
  );
  return JSON.parse(
    text.replace(/("kata-admission\.screwdriver\.cd\/submitted":)"(?:[^"\\]|\\.)*"/g, '$1"MEMORY"'),
  );
}

describe('golden: two-route configs keep their decisions and patches', () => {
  for (const { name, configText, review } of goldenCases(readFileSync, parse)) {
    it(name, async () => {
      const policy = policyFrom(configText);
      const outcome = await reviewAdmission(reviewForPod(review, policy), { policy });
      assert.ok(outcome.ok);
      const { patch, ...response } = outcome.review.response;
      const answer = {
        ...response,
        patch: patch ? JSON.parse(Buffer.from(patch, 'base64').toString('utf8')) : [],
      };
      assert.deepEqual(withoutHash(answer), withoutHash(golden[name]));
    });
  }
});
