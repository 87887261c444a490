// Package awskms is the kms.Provider for customer managed keys in AWS KMS,
// built on the AWS SDK for Go v2.
//
// A Client talks to AWS KMS in any number of regions (one SDK client per
// region, made on first use) with one retry policy: throttling and
// transient faults (5xx, timeouts, broken connections) are retried with
// exponential backoff and jitter; a refusal (access denied, a disabled,
// missing or deleted key, a bad ciphertext) never is. Every failure is a
// *kms.Error whose Kind is the kms sentinel a caller branches on, mapped
// from the AWS error code, never from message text.
//
// Use ParseARN to accept a key from an administrator (aliases are refused:
// they can be repointed), Client.DescribeKey and Client.Probe to check a
// key at registration, and Client.Provider to use it for one tenant. Data
// keys travel only as *secret.Bytes; the tenant's kms.Binding is the AWS
// encryption context of every call, so AWS (and CloudTrail) sees which
// tenant and which data key each call is for, and a wrapped key moved to
// another tenant does not decrypt.
package awskms
