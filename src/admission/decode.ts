// Decoding an AdmissionReview: the envelope is checked, the object inside is kept raw.
import { z } from 'zod';

export const API_VERSIONS = ['admission.k8s.io/v1', 'admission.k8s.io/v1beta1'] as const;
export type AdmissionApiVersion = (typeof API_VERSIONS)[number];

const groupVersionKind = z.looseObject({ group: z.string().optional(), version: z.string().optional(), kind: z.string() });

const admissionReview = z.looseObject({
  apiVersion: z.enum(API_VERSIONS, { error: (i) => `apiVersion must be one of ${API_VERSIONS.join(', ')}, got ${JSON.stringify(i.input)}` }),
  kind: z.literal('AdmissionReview', { error: (i) => `kind must be AdmissionReview, got ${JSON.stringify(i.input)}` }),
  request: z.looseObject(
    {
      uid: z.string({ error: 'request.uid is missing' }).min(1, 'request.uid is empty'),
      kind: groupVersionKind.optional(),
      subResource: z.string().optional(),
      namespace: z.string().optional(),
      name: z.string().optional(),
      operation: z.string().optional(),
      dryRun: z.boolean().optional(),
      object: z.unknown(),
    },
    { error: (i) => (i.input === undefined ? 'the AdmissionReview has no request' : 'request must be an object') },
  ),
}, { error: 'the body is not a JSON object' });

export type AdmissionRequest = z.output<typeof admissionReview>['request'];
export interface DecodedReview {
  apiVersion: AdmissionApiVersion;
  request: AdmissionRequest;
}

export type DecodeResult = { ok: true; review: DecodedReview } | { ok: false; error: string };

export function decodeAdmissionReview(body: unknown): DecodeResult {
  const result = admissionReview.safeParse(body);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const custom = issue.message.startsWith('request.') || issue.path.length < 2;
    return { ok: false, error: `not a valid AdmissionReview: ${custom ? issue.message : `${issue.path.join('.')}: ${issue.message}`}` };
  }
  return { ok: true, review: { apiVersion: result.data.apiVersion, request: result.data.request } };
}
