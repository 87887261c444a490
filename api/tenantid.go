package api

// MaxTenantIDLength is the longest tenant id.
const MaxTenantIDLength = 64

// ValidTenantID reports whether id has the form of a tenant id: 1 to 64
// ASCII letters, digits, '.', '_' or '-', starting with a letter or a digit.
// Names outside that form (the audit log's "_platform" chain among them)
// can never be a tenant, so the server refuses tokens that name one.
func ValidTenantID(id string) bool {
	if len(id) == 0 || len(id) > MaxTenantIDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return false
		}
	}
	return true
}
