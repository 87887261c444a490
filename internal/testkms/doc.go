// Package testkms gives tests a real AWS KMS API to talk to: local-kms
// (github.com/nsmithuk/local-kms, an AWS KMS emulator) in a process of its
// own, seeded with well-known keys, and a fault-injecting proxy in front of
// it. The AWS SDK for Go v2 talks to it exactly as it talks to AWS, so the
// AWS key provider is tested with its real client code.
//
// Use Start for one Region, StartPair for a primary Region and its DR Region
// sharing multi-Region key material, and NewProxy when a test needs faults
// (latency, dropped connections, throttling, 5xx, AccessDenied, a Region that
// is down), call counts, or multi-Region metadata. Server.Client and
// Proxy.Client return SDK clients; code under test gets Server.URL or
// Proxy.URL as its KMS endpoint. The seeded keys are SymmetricKeyID,
// MultiRegionKeyID, SecondMultiRegionKeyID and AsymmetricKeyID, with fixed
// key material.
//
// Everything listens on 127.0.0.1 only. local-kms's own main listens on every
// interface, so this package runs a small wrapper (./localkms) that serves
// local-kms's exported request handler on a loopback port instead, one
// process per Region because local-kms keeps its Region and account in
// package variables. The wrapper is built with the go command on first use
// in a test process (seconds, or more than a minute on a cold build cache) and
// cached in os.TempDir()/tenantcrypt-testkms-<uid>; local-kms is a Go tool
// dependency of the module, so this works offline once the module cache
// has it. Each server has its own data directory; the process is stopped and
// the directory removed when the test ends, and a process whose test binary
// dies stops by itself (its standard input closes).
//
// # Differences from AWS KMS
//
// local-kms differs from AWS KMS in ways that tests must allow for (this
// package's tests pin them, so that a local-kms that changes shows):
//
//   - It has no multi-Region keys: an mrk- key is an ordinary symmetric key
//     that has the same id and key material in each Region's server.
//     DescribeKey reports neither MultiRegion nor MultiRegionConfiguration
//     (AWS always sends MultiRegion, false for single-Region keys: read it
//     with aws.ToBool); Proxy.SetMultiRegion adds both for the keys it is
//     told about, and a test that relies on them should say so. CreateKey
//     ignores MultiRegion (the key gets a plain UUID id); ReplicateKey and
//     UpdatePrimaryRegion answer HTTP 501.
//   - Its ciphertext blobs name the key by its full ARN, Region included, so
//     Decrypt of a ciphertext made in another Region needs the KeyId
//     parameter: the key id or this Region's key ARN (the other Region's ARN
//     answers NotFoundException). Without KeyId the answer is
//     AccessDeniedException; AWS decrypts it with the local replica.
//   - Decrypt without KeyId of a ciphertext whose key is disabled answers
//     AccessDeniedException (AWS: DisabledException); with KeyId it is
//     DisabledException, as in AWS.
//   - CancelKeyDeletion leaves the key Enabled (AWS: Disabled).
//   - GenerateDataKey with an asymmetric key answers InternalFailureException
//     with HTTP 500, which SDK retryers retry (AWS: InvalidKeyUsageException,
//     400).
//   - Actions it does not implement (RotateKeyOnDemand, ReplicateKey,
//     UpdatePrimaryRegion, ...) answer HTTP 501 with a plain-text body: the
//     SDK reports a deserialization error with no AWS error code.
//   - There are no key policies, grants or IAM: every call is allowed and
//     signatures are not checked. AccessDeniedException comes only from a
//     Proxy fault (or from the Decrypt cases above).
//   - It sends no request id; the wrapper and the proxy add an
//     x-amzn-RequestId header to every answer, as AWS does.
//   - Single-Region keys exist wherever they are seeded: Start seeds every
//     key in every server, StartPair creates single-Region keys in the
//     primary Region only.
package testkms
