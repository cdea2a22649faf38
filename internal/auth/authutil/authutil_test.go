package authutil

import "testing"

func TestCheckIdPURL(t *testing.T) {
	for s, ok := range map[string]bool{
		"https://idp.example.com": true, "http://127.0.0.1:9000/": true,
		"ftp://idp": false, "https://": false, "https://user:pw@idp": false, "::not a url": false, "/relative": false,
	} {
		if err := CheckIdPURL(s); (err == nil) != ok {
			t.Errorf("%q: err=%v, want ok=%v", s, err, ok)
		}
	}
}
