// Client certificates for the test control plane's identities (admin, the build executor).
import forge from 'node-forge';
import { newCertificate, type KeyPair } from '../../src/tls/certs.js';

export function generateClientCert(ca: KeyPair, commonName: string, organizations: string[] = []): KeyPair {
  const caCert = forge.pki.certificateFromPem(ca.certPem);
  const keys = forge.pki.rsa.generateKeyPair({ bits: 2048 });
  const cert = newCertificate(keys.publicKey, 1);
  cert.setSubject([
    { name: 'commonName', value: commonName },
    ...organizations.map((value) => ({ name: 'organizationName', value })),
  ]);
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', clientAuth: true },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(ca.keyPem), forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: forge.pki.privateKeyToPem(keys.privateKey) };
}
