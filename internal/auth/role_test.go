package auth

import (
	"encoding/json"
	"testing"
)

func TestRoleNames(t *testing.T) {
	tests := []struct {
		role Role
		name string
	}{
		{RolePlatformAdmin, "platform-admin"},
		{RoleTenantAdmin, "tenant-admin"},
		{RoleService, "service"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.role.String(); got != tt.name {
				t.Errorf("String() = %q, want %q", got, tt.name)
			}
			got, err := ParseRole(tt.name)
			if err != nil || got != tt.role {
				t.Errorf("ParseRole(%q) = %v, %v; want %v", tt.name, got, err, tt.role)
			}
			var r Role
			if err := r.UnmarshalText([]byte(tt.name)); err != nil || r != tt.role {
				t.Errorf("UnmarshalText(%q) = %v, %v; want %v", tt.name, r, err, tt.role)
			}
		})
	}
}

func TestParseRoleRefuses(t *testing.T) {
	for _, s := range []string{"", "Service", "SERVICE", " service", "admin", "platform_admin", "Role(1)"} {
		if r, err := ParseRole(s); err == nil {
			t.Errorf("ParseRole(%q) = %v, want an error", s, r)
		}
	}
}

func TestRoleZeroValue(t *testing.T) {
	var r Role
	if got, want := r.String(), "Role(0)"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if _, err := r.MarshalText(); err == nil {
		t.Error("MarshalText of the zero Role succeeded")
	}
	if got, want := Role(9).String(), "Role(9)"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestRolesJSON(t *testing.T) {
	in := []Role{RoleService, RolePlatformAdmin}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `["service","platform-admin"]`; got != want {
		t.Errorf("json.Marshal = %s, want %s", got, want)
	}
	var out []Role
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || out[0] != RoleService || out[1] != RolePlatformAdmin {
		t.Errorf("json.Unmarshal = %v, want %v", out, in)
	}
	if err := json.Unmarshal([]byte(`["root"]`), &out); err == nil {
		t.Error(`json.Unmarshal(["root"]) succeeded`)
	}
}
