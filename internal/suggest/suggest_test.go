package suggest

import "testing"

func TestName(t *testing.T) {
	for _, tc := range []struct {
		given string
		from  []string
		want  string
	}{
		{"htps", []string{"https", "ssh"}, "https"},
		{"tpc", []string{"tcp", "udp"}, "tcp"},
		{"alow", []string{"allow", "deny", "log", "pass"}, "allow"},
		{"Order", []string{"order", "selector"}, "order"},
		{"xyz", []string{"allow", "deny"}, ""},
		{"a", []string{"b", "allow"}, "b"},
		{"same", []string{"same"}, ""},
		{"tcp", []string{"TCP", "UDP"}, "TCP"},
	} {
		if got := Name(tc.given, tc.from); got != tc.want {
			t.Errorf("Name(%q, %q) = %q, want %q", tc.given, tc.from, got, tc.want)
		}
	}
}
