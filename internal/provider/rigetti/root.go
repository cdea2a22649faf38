package rigetti

import (
	"errors"
	"fmt"
	"strings"
)

// MaxRefreshTokenLen bounds a refresh token (Okta's are under 100
// characters; the bound only stops garbage being stored).
const MaxRefreshTokenLen = 4096

// ParseRoot reads the stored root credential: the current QCS refresh
// token itself, exactly as the QCS SDK keeps it in ~/.qcs/secrets.toml
// (credentials.<profile>.token_payload.refresh_token), with no prefix and
// no client id. Surrounding whitespace (a pasted newline) is dropped; the
// rest must be 1 to MaxRefreshTokenLen printable ASCII characters without
// spaces. The rotated value Mint returns has the same format. Errors never
// quote the token.
func ParseRoot(raw string) (string, error) {
	tok := strings.TrimSpace(raw)
	switch {
	case tok == "":
		return "", errors.New("rigetti: the root credential (a QCS refresh token) is empty")
	case len(tok) > MaxRefreshTokenLen:
		return "", fmt.Errorf("rigetti: the root credential is %d bytes, longer than a QCS refresh token can be (%d)", len(tok), MaxRefreshTokenLen)
	}
	for i := 0; i < len(tok); i++ {
		if c := tok[i]; c <= ' ' || c > '~' {
			return "", fmt.Errorf("rigetti: the root credential must be the bare QCS refresh token (printable ASCII, no spaces); byte %d is not", i)
		}
	}
	return tok, nil
}
