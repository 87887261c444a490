package auth

import (
	"fmt"
	"slices"
	"time"
)

// Role is what a principal may do. The zero value is not a role.
type Role uint8

// The roles of the JWT "roles" claim.
const (
	// RolePlatformAdmin manages tenants; it is not bound to a tenant.
	RolePlatformAdmin Role = iota + 1
	// RoleTenantAdmin manages its own tenant's key providers, migrations
	// and audit log.
	RoleTenantAdmin
	// RoleService uses its own tenant's data plane (encrypt, decrypt,
	// data keys).
	RoleService
)

var roleNames = [...]string{
	RolePlatformAdmin: "platform-admin",
	RoleTenantAdmin:   "tenant-admin",
	RoleService:       "service",
}

// String returns the role's name as it appears in the "roles" claim.
func (r Role) String() string {
	if r.valid() {
		return roleNames[r]
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

// ParseRole returns the role named s ("platform-admin", "tenant-admin" or
// "service", exactly).
func ParseRole(s string) (Role, error) {
	for r := RolePlatformAdmin; r <= RoleService; r++ {
		if roleNames[r] == s {
			return r, nil
		}
	}
	return 0, fmt.Errorf("auth: unknown role %q", s)
}

// MarshalText returns the role's name, so that a Role reads and writes as a
// string in JSON and configuration; the zero value is an error.
func (r Role) MarshalText() ([]byte, error) {
	if !r.valid() {
		return nil, fmt.Errorf("auth: invalid role %d", uint8(r))
	}
	return []byte(roleNames[r]), nil
}

// UnmarshalText sets the role from its name, as [ParseRole] does.
func (r *Role) UnmarshalText(text []byte) error {
	v, err := ParseRole(string(text))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

func (r Role) valid() bool { return r >= RolePlatformAdmin && r <= RoleService }

// tenantScoped reports whether the role acts within one tenant, and so
// needs a token that names the tenant.
func (r Role) tenantScoped() bool { return r == RoleTenantAdmin || r == RoleService }

// Principal is the verified identity behind a request.
type Principal struct {
	// Subject is the token's "sub": who is calling, as recorded in audit.
	Subject string
	// TenantID is the token's "tenantId"; empty only for a principal that
	// has no tenant role.
	TenantID string
	// TokenID is the token's "jti", empty if the token has none.
	TokenID string
	// Roles holds each of the token's roles once, in the order of the Role
	// constants.
	Roles []Role
	// ExpiresAt is the token's "exp".
	ExpiresAt time.Time
}

// Has reports whether the principal holds role r.
func (p Principal) Has(r Role) bool {
	return slices.Contains(p.Roles, r)
}

// normalizeRoles checks roles and returns each once, in constant order, in a
// new slice.
func normalizeRoles(roles []Role) ([]Role, error) {
	var seen [RoleService + 1]bool
	n := 0
	for _, r := range roles {
		if !r.valid() {
			return nil, fmt.Errorf("auth: invalid role %d", uint8(r))
		}
		if !seen[r] {
			seen[r] = true
			n++
		}
	}
	out := make([]Role, 0, n)
	for r := RolePlatformAdmin; r <= RoleService; r++ {
		if seen[r] {
			out = append(out, r)
		}
	}
	return out, nil
}
