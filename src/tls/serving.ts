// The serving certificate in use: loaded, checked, and swapped without a restart.
import { X509Certificate, createPrivateKey } from 'node:crypto';

export interface ServingCert {
  cert: string;
  key: string;
  notAfter: Date;
  serialNumber: string;
}

/** Parses and checks a cert/key pair; throws with a readable reason when they cannot serve. */
export function loadServingCert(certPem: string, keyPem: string): ServingCert {
  const x509 = new X509Certificate(certPem);
  if (!x509.checkPrivateKey(createPrivateKey(keyPem)))
    throw new Error('the key does not belong to the certificate');
  const notAfter = new Date(x509.validTo);
  const notBefore = new Date(x509.validFrom);
  if (notAfter.getTime() <= Date.now())
    throw new Error(`the certificate expired at ${notAfter.toISOString()}`);
  if (notBefore.getTime() > Date.now())
    throw new Error(`the certificate is not valid before ${notBefore.toISOString()}`);
  return {
    cert: certPem,
    key: keyPem,
    notAfter,
    serialNumber: x509.serialNumber,
  };
}
