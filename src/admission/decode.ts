// Decoding an AdmissionReview: the envelope is checked, the object inside is kept raw.
// Hand-written checks: this runs on every request (see src/kube/pod.ts for why not zod).
import { isObject } from '../kube/json.js';

const API_VERSIONS = ['admission.k8s.io/v1', 'admission.k8s.io/v1beta1'] as const;
export type AdmissionApiVersion = (typeof API_VERSIONS)[number];

export interface AdmissionRequest {
  uid: string;
  kind?: { group?: string; version?: string; kind: string };
  subResource?: string;
  namespace?: string;
  name?: string;
  operation?: string;
  dryRun?: boolean;
  /** Who sent the request (the API server's authenticated user); only the name is read. */
  userInfo?: { username?: unknown };
  object?: unknown;
  /** The pod as stored, on UPDATE. */
  oldObject?: unknown;
}

export interface DecodedReview {
  apiVersion: AdmissionApiVersion;
  request: AdmissionRequest;
}

export type DecodeResult = { ok: true; review: DecodedReview } | { ok: false; error: string };

const OPTIONAL_STRINGS = ['subResource', 'namespace', 'name', 'operation'] as const;

function problemOf(body: unknown): string | undefined {
  if (!isObject(body)) return 'the body is not a JSON object';
  if (!API_VERSIONS.includes(body.apiVersion as AdmissionApiVersion))
    return `apiVersion must be one of ${API_VERSIONS.join(', ')}, got ${JSON.stringify(body.apiVersion)}`;
  if (body.kind !== 'AdmissionReview')
    return `kind must be AdmissionReview, got ${JSON.stringify(body.kind)}`;
  const request = body.request;
  if (request === undefined) return 'the AdmissionReview has no request';
  if (!isObject(request)) return 'request must be an object';
  if (request.uid === undefined) return 'request.uid is missing';
  if (typeof request.uid !== 'string') return 'request.uid must be a string';
  if (request.uid === '') return 'request.uid is empty';
  for (const key of OPTIONAL_STRINGS) {
    if (request[key] !== undefined && typeof request[key] !== 'string')
      return `request.${key} must be a string`;
  }
  if (request.dryRun !== undefined && typeof request.dryRun !== 'boolean')
    return 'request.dryRun must be a boolean';
  const kind = request.kind;
  if (kind !== undefined && (!isObject(kind) || typeof kind.kind !== 'string'))
    return 'request.kind must be a group/version/kind';
  return undefined;
}

export function decodeAdmissionReview(body: unknown): DecodeResult {
  const problem = problemOf(body);
  if (problem) return { ok: false, error: `not a valid AdmissionReview: ${problem}` };
  const review = body as { apiVersion: AdmissionApiVersion; request: AdmissionRequest };
  return { ok: true, review: { apiVersion: review.apiVersion, request: review.request } };
}
