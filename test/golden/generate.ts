// Writes test/golden/answers.json: the response to every fixture under every golden config, as the
// code at the time of writing answers them. Run from a checkout of the version to pin:
//   node --import tsx test/golden/generate.ts
import { readFileSync, writeFileSync } from 'node:fs';
import { parse } from 'yaml';
import { reviewAdmission } from '../../src/admission/review.js';
import { reviewForPod } from '../../src/cli/explanation.js';
import { parseConfig } from '../../src/policy/load.js';
import { goldenCases } from './cases.js';

const answers: Record<string, unknown> = {};
for (const { name, configText, review } of goldenCases(readFileSync, parse)) {
  const result = parseConfig(configText);
  if (!result.ok) throw new Error(`${name}: ${result.problems.join('; ')}`);
  const outcome = await reviewAdmission(reviewForPod(review, result.policy), { policy: result.policy });
  if (!outcome.ok) throw new Error(`${name}: ${outcome.error}`);
  const { patch, ...response } = outcome.review.response;
  answers[name] = {
    ...response,
    patch: patch ? JSON.parse(Buffer.from(patch, 'base64').toString('utf8')) : [],
  };
}
writeFileSync(new URL('answers.json', import.meta.url), JSON.stringify(answers, null, 1) + '\n');
