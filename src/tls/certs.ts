// A CA and serving certificates with node-forge: RSA 2048, SHA-256, SANs for the Service's DNS names.
import { X509Certificate } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import forge from 'node-forge';
import { CERT_FILES } from './files.js';

export { CERT_FILES };

export interface KeyPair {
  certPem: string;
  keyPem: string;
}

const CA_DAYS = 3650;
const SERVING_DAYS = 365;
/** A certificate this close to expiry is renewed instead of reused. */
const RENEW_BEFORE_MS = 30 * 24 * 3600 * 1000;

export function serviceDnsNames(service: string, namespace: string): string[] {
  return [
    service,
    `${service}.${namespace}`,
    `${service}.${namespace}.svc`,
    `${service}.${namespace}.svc.cluster.local`,
  ];
}

/** A certificate with a random serial and validity from a few minutes ago; subject and extensions are the caller's. */
export function newCertificate(
  publicKey: forge.pki.PublicKey,
  days: number,
  notBefore = new Date(Date.now() - 5 * 60 * 1000),
): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  // Positive 128-bit serial (RFC 5280: at most 20 octets, non-negative).
  cert.serialNumber = `01${forge.util.bytesToHex(forge.random.getBytesSync(15))}`;
  cert.validity.notBefore = notBefore; // by default a few minutes ago: tolerates small clock skew
  cert.validity.notAfter = new Date(notBefore.getTime() + days * 24 * 3600 * 1000);
  return cert;
}

export function generateCa(commonName = 'kata-admission CA', days = CA_DAYS): KeyPair {
  const keys = forge.pki.rsa.generateKeyPair({ bits: 2048 });
  const cert = newCertificate(keys.publicKey, days);
  const subject = [{ name: 'commonName', value: commonName }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true, pathLenConstraint: 0 },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: forge.pki.privateKeyToPem(keys.privateKey) };
}

export function generateServingCert(
  ca: KeyPair,
  dnsNames: string[],
  ipAddresses: string[] = [],
  days = SERVING_DAYS,
  notBefore?: Date,
): KeyPair {
  const caCert = forge.pki.certificateFromPem(ca.certPem);
  const caKey = forge.pki.privateKeyFromPem(ca.keyPem);
  const keys = forge.pki.rsa.generateKeyPair({ bits: 2048 });
  const cert = newCertificate(keys.publicKey, days, notBefore);
  cert.setSubject([{ name: 'commonName', value: dnsNames[0] ?? ipAddresses[0] ?? 'kata-admission' }]);
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    {
      name: 'subjectAltName',
      altNames: [
        ...dnsNames.map((value) => ({ type: 2, value })),
        ...ipAddresses.map((ip) => ({ type: 7, ip })),
      ],
    },
    { name: 'authorityKeyIdentifier', keyIdentifier: caCert.generateSubjectKeyIdentifier().getBytes() },
  ]);
  cert.sign(caKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: forge.pki.privateKeyToPem(keys.privateKey) };
}

/** The file names `certs` and `serve` use, the same as a kubernetes.io/tls Secret's keys. */

export interface CertBundle {
  ca: KeyPair;
  serving: KeyPair;
  /** base64 of the CA certificate PEM: the webhook configuration's caBundle. */
  caBundle: string;
}

async function readPair(certPath: string, keyPath: string): Promise<KeyPair | undefined> {
  try {
    return { certPem: await readFile(certPath, 'utf8'), keyPem: await readFile(keyPath, 'utf8') };
  } catch {
    return undefined;
  }
}

/** Valid now, not about to expire, and (for a serving cert) naming every host we need. */
function usable(pair: KeyPair | undefined, hosts: string[] = []): pair is KeyPair {
  if (!pair) return false;
  try {
    const cert = new X509Certificate(pair.certPem);
    if (Date.parse(cert.validTo) - Date.now() < RENEW_BEFORE_MS) return false;
    return hosts.every((h) => (/^[\d.:]+$/.test(h) ? cert.checkIP(h) : cert.checkHost(h)) !== undefined);
  } catch {
    return false;
  }
}

/**
 * Makes (or reuses) the CA and a serving cert in `dir`. A still-valid CA is kept, so renewing the
 * serving cert keeps the caBundle already registered with the API server.
 */
export async function ensureCerts(
  dir: string,
  dnsNames: string[],
  ipAddresses: string[] = [],
): Promise<CertBundle & { created: boolean }> {
  await mkdir(dir, { recursive: true });
  const paths = Object.fromEntries(Object.entries(CERT_FILES).map(([k, f]) => [k, join(dir, f)])) as Record<
    keyof typeof CERT_FILES,
    string
  >;
  let ca = await readPair(paths.caCert, paths.caKey);
  let serving = await readPair(paths.cert, paths.key);
  let created = false;
  if (!usable(ca)) {
    ca = generateCa();
    await writePair(paths.caCert, paths.caKey, ca);
    serving = undefined;
    created = true;
  }
  if (!usable(serving, [...dnsNames, ...ipAddresses]) || !signedBy(serving, ca)) {
    serving = generateServingCert(ca, dnsNames, ipAddresses);
    await writePair(paths.cert, paths.key, serving);
    created = true;
  }
  return { ca, serving, caBundle: Buffer.from(ca.certPem).toString('base64'), created };
}

function signedBy(serving: KeyPair, ca: KeyPair): boolean {
  try {
    return new X509Certificate(serving.certPem).verify(new X509Certificate(ca.certPem).publicKey);
  } catch {
    return false;
  }
}

async function writePair(certPath: string, keyPath: string, pair: KeyPair): Promise<void> {
  await writeFile(keyPath, pair.keyPem, { mode: 0o600 });
  await chmod(keyPath, 0o600); // an existing file keeps its old mode on writeFile
  await writeFile(certPath, pair.certPem, { mode: 0o644 });
}
