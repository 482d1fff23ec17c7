// AdmissionReview responses: a few named constructors, and one envelope that fills in uid and version.
import type { Operation } from 'fast-json-patch';
import type { AdmissionApiVersion } from './decode.js';

export interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  patchType?: 'JSONPatch';
  patch?: string;
  warnings?: string[];
  auditAnnotations?: Record<string, string>;
  status?: { code: number; message: string };
}

export interface AdmissionReviewResponse {
  apiVersion: AdmissionApiVersion;
  kind: 'AdmissionReview';
  response: AdmissionResponse;
}

type Body = Omit<AdmissionResponse, 'uid'>;

export const allowed = (): Body => ({ allowed: true });

export function patched(
  patch: readonly Operation[],
  warnings: readonly string[],
  auditAnnotations: Record<string, string>,
): Body {
  return {
    allowed: true,
    ...(patch.length > 0 && {
      patchType: 'JSONPatch' as const,
      patch: Buffer.from(JSON.stringify(patch)).toString('base64'),
    }),
    ...(warnings.length > 0 && { warnings: [...warnings] }),
    auditAnnotations,
  };
}

/** A refusal: the API server shows `message` to the submitter. */
export function denied(code: number, message: string): Body {
  return { allowed: false, status: { code, message } };
}

export function admissionReview(
  apiVersion: AdmissionApiVersion,
  uid: string,
  body: Body,
): AdmissionReviewResponse {
  return { apiVersion, kind: 'AdmissionReview', response: { uid, ...body } };
}
