package contract

import "testing"

func TestPlainURLAuthority(t *testing.T) {
	for in, want := range map[string]string{
		"https://app.example.com/chat?c=1":  "app.example.com",
		"https://app.example.com:8443":      "app.example.com:8443",
		"http://127.0.0.1:8080/done":        "127.0.0.1:8080",
		"http://[::1]:8080/":                "[::1]:8080",
		"https://xn--pple-43d.com/":         "xn--pple-43d.com",
		"https://%D0%B0pple.com/":           "",
		"https://app.example.com%E2%80%AE/": "",
		"https://app.example.com:99999/":    "",
		"https://app.example.com:0/":        "",
		"https://app.example.com:/":         "",
		"https://a;b.example.com/":          "",
		"https://a&b.example.com/":          "",
		"https://user@app.example.com/":     "",
		"https://-app.example.com/":         "",
		"app.example.com/chat":              "",
		"https:///chat":                     "",
	} {
		got, ok := PlainURLAuthority(in)
		if got != want || ok != (want != "") {
			t.Errorf("%q: %q %v, want %q", in, got, ok, want)
		}
	}
}
