// Package keyprovider is the domain of customer managed keys: a tenant
// admin registers an AWS KMS key by ARN, tests it, renames it, deletes it,
// and (with package migration, later) moves the tenant's keys to it. It
// serves the Qlik-compatible key-provider API through internal/server.
package keyprovider
