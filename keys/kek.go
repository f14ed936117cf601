package keys

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// kekSize is the length of a key-encryption key: AES-256.
const kekSize = 32

// kekIDLabel domain-separates the KEK identifier from any other use of
// SHA-256 over the key.
const kekIDLabel = "claimbridge kek id\x00"

// KEK is a key-encryption key: an AES-256-GCM key that seals the private
// parts of signing keys at rest. It never prints, logs or marshals its key
// material; every textual form shows its ID only.
type KEK struct {
	aead cipher.AEAD // AES-256-GCM, random 12-byte nonce prefixed to the ciphertext
	id   string
}

// ParseKEK parses a KEK of exactly 32 bytes encoded as hex or base64 (standard
// or URL alphabet, padded or not). Surrounding whitespace is ignored. Errors
// never contain the value.
func ParseKEK(s string) (*KEK, error) {
	raw, err := decodeKEK(s)
	if err != nil {
		return nil, fmt.Errorf("keys: invalid KEK: %w", err)
	}
	defer clear(raw)
	return newKEK(raw)
}

// decodeKEK decodes s as hex or base64. Decoder errors are not wrapped:
// some (encoding/hex) quote the offending input.
func decodeKEK(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("it is empty")
	}
	if len(s)%2 == 0 {
		if raw, err := hex.DecodeString(s); err == nil {
			if len(raw) != kekSize {
				clear(raw)
				return nil, fmt.Errorf("it must be exactly %d bytes, got %d after hex decoding", kekSize, len(raw))
			}
			return raw, nil
		}
	}
	encodings := []*base64.Encoding{
		base64.StdEncoding, base64.URLEncoding,
		base64.RawStdEncoding, base64.RawURLEncoding,
	}
	for _, enc := range encodings {
		raw, err := enc.Strict().DecodeString(s)
		if err != nil {
			continue
		}
		if len(raw) != kekSize {
			clear(raw)
			return nil, fmt.Errorf("it must be exactly %d bytes, got %d after base64 decoding", kekSize, len(raw))
		}
		return raw, nil
	}
	return nil, fmt.Errorf("its %d characters are neither base64 nor hex: it must be %d random bytes, base64 or hex encoded", len(s), kekSize)
}

// newKEK builds a KEK from 32 raw bytes. The caller keeps ownership of raw.
func newKEK(raw []byte) (*KEK, error) {
	if len(raw) != kekSize {
		return nil, fmt.Errorf("keys: KEK must be exactly %d bytes, got %d", kekSize, len(raw))
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, fmt.Errorf("keys: KEK cipher: %w", err)
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("keys: KEK cipher: %w", err)
	}
	h := sha256.New()
	h.Write([]byte(kekIDLabel))
	h.Write(raw)
	return &KEK{aead: aead, id: "kek-" + hex.EncodeToString(h.Sum(nil)[:8])}, nil
}

// LoadKEKFile reads a KEK from a file holding its hex or base64 encoding.
func LoadKEKFile(path string) (*KEK, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("keys: read KEK file: %w", err)
	}
	defer clear(b)
	raw, err := decodeKEK(string(b))
	if err != nil {
		return nil, fmt.Errorf("keys: invalid KEK in %s: %w", path, err)
	}
	defer clear(raw)
	return newKEK(raw)
}

// CreateKEKFile generates a random KEK and writes it, base64 encoded, to a
// new file of mode 0600, creating missing parent directories with mode 0700.
// It fails if the file exists. It is meant for development setups.
func CreateKEKFile(path string) (*KEK, error) {
	raw := make([]byte, kekSize)
	defer clear(raw)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("keys: generate KEK: %w", err)
	}
	k, err := newKEK(raw)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("keys: create KEK directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("keys: create KEK file: %w", err)
	}
	enc := []byte(base64.StdEncoding.EncodeToString(raw) + "\n")
	defer clear(enc)
	_, err = f.Write(enc)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return nil, fmt.Errorf("keys: write KEK file: %w", err)
	}
	return k, nil
}

// ID identifies the KEK without revealing it: "kek-" followed by 16 hex
// digits of a domain-separated SHA-256 of the key. It is safe to store and
// log.
func (k KEK) ID() string { return k.id }

// seal encrypts plaintext, binding it to aad. The result is
// nonce || ciphertext || tag.
func (k KEK) seal(plaintext, aad []byte) []byte {
	return k.aead.Seal(nil, nil, plaintext, aad)
}

// open decrypts what seal produced with the same aad.
func (k KEK) open(sealed, aad []byte) ([]byte, error) {
	return k.aead.Open(nil, nil, sealed, aad)
}

// String returns "KEK(<id>)".
func (k KEK) String() string { return "KEK(" + k.id + ")" }

// GoString returns the same as String, so %#v cannot leak the key.
func (k KEK) GoString() string { return k.String() }

// Format prints String for every verb and flag.
func (k KEK) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, k.String()) }

// LogValue logs the KEK as its String.
func (k KEK) LogValue() slog.Value { return slog.StringValue(k.String()) }

// MarshalJSON encodes the KEK as its ID only.
func (k KEK) MarshalJSON() ([]byte, error) { return json.Marshal(k.id) }
