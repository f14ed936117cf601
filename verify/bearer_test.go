package verify

import "testing"

func TestBearerToken(t *testing.T) {
	tests := []struct{ value, header, want string }{
		{"Bearer a.b.c", "Authorization", "a.b.c"},
		{"bearer  a.b.c ", "Authorization", "a.b.c"},
		{"Basic dXNlcjpwdw==", "Authorization", ""},
		{"a.b.c", "Authorization", ""},
		{"", "Authorization", ""},
		{"a.b.c", "X-Forwarded-Access-Token", "a.b.c"},
		{"Bearer a.b.c", "x-forwarded-access-token", "a.b.c"},
		{"Basic dXNlcjpwdw==", "X-Forwarded-Access-Token", ""},
		{"a.b.c", "authorization", ""},
	}
	for _, tt := range tests {
		if got := BearerToken(tt.value, tt.header); got != tt.want {
			t.Errorf("BearerToken(%q, %q) = %q, want %q", tt.value, tt.header, got, tt.want)
		}
	}
}
