package devidp

import (
	"crypto"
	_ "crypto/sha256" // registers SHA-256 for thumbprints
	"encoding/base64"
)

const cryptoSHA256 = crypto.SHA256

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
