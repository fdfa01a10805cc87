package config

import (
	"strings"
	"testing"
)

func TestValidDomain(t *testing.T) {
	for name, want := range map[string]string{
		"api.example.com":                "",
		"API.example.com.":               "",
		"_svc.example.com":               "",
		"*.example.com":                  "needs DNS snooping",
		"api":                            "not a fully qualified name",
		"192.0.2.1":                      "is an address",
		"::1":                            "is an address",
		"1.2.3":                          "all digits",
		"a..example.com":                 "empty label",
		"-a.example.com":                 "cannot",
		"a b.example.com":                "cannot",
		strings.Repeat("a", 64) + ".com": "longer than 63",
		"":                               "empty domain name",
	} {
		err := ValidDomain(name)
		switch {
		case want == "" && err != nil:
			t.Errorf("%q: %v", name, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%q: %v, want %q", name, err, want)
		}
	}
	if got := CanonicalDomain("API.Example.com."); got != "api.example.com" {
		t.Errorf("CanonicalDomain = %q", got)
	}
}
