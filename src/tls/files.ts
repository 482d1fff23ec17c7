// The certificate files' names in a directory (`kata-admission certs`, dev certificates, the Secret's keys).
export const CERT_FILES = { caCert: 'ca.crt', caKey: 'ca.key', cert: 'tls.crt', key: 'tls.key' } as const;
