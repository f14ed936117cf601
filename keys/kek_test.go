package keys

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// testKEKBytes returns 32 bytes whose encodings contain '+', '/', '-' or
// '_' depending on the alphabet.
func testKEKBytes() []byte {
	raw := make([]byte, kekSize)
	for i := range raw {
		raw[i] = byte(0xf8 + i*37)
	}
	return raw
}

func testKEK(t testing.TB) *KEK {
	t.Helper()
	k, err := newKEK(testKEKBytes())
	require.NoError(t, err)
	return k
}

func TestParseKEK(t *testing.T) {
	raw := testKEKBytes()
	want := testKEK(t).ID()
	tests := []struct {
		name    string
		in      string
		wantErr string // substring; "" means success
	}{
		{"base64 std padded", base64.StdEncoding.EncodeToString(raw), ""},
		{"base64 url padded", base64.URLEncoding.EncodeToString(raw), ""},
		{"base64 std raw", base64.RawStdEncoding.EncodeToString(raw), ""},
		{"base64 url raw", base64.RawURLEncoding.EncodeToString(raw), ""},
		{"hex lower", hex.EncodeToString(raw), ""},
		{"hex upper", strings.ToUpper(hex.EncodeToString(raw)), ""},
		{"surrounding whitespace ignored", " \t" + hex.EncodeToString(raw) + "\n", ""},
		{"empty", "", "empty"},
		{"blank", "  \n", "empty"},
		{"base64 of 31 bytes", base64.StdEncoding.EncodeToString(raw[:31]), "got 31 after base64"},
		{"base64 of 33 bytes", base64.RawURLEncoding.EncodeToString(append(raw, 1)), "got 33 after base64"},
		{"hex of 16 bytes", hex.EncodeToString(raw[:16]), "got 16 after hex"},
		{"hex of 64 bytes", hex.EncodeToString(append(raw, raw...)), "got 64 after hex"},
		{"garbage", "this is not a key!!! this is not a key!!!!!", "neither base64 nor hex"},
		{"mixed alphabets", "+" + base64.RawURLEncoding.EncodeToString(raw)[1:42] + "_", "neither base64 nor hex"},
		{"inner whitespace", hex.EncodeToString(raw[:16]) + " " + hex.EncodeToString(raw[16:]), "neither base64 nor hex"},
		{"non-hex of hex length", strings.Repeat("g", 64), "got 48 after base64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParseKEK(tt.in)
			if tt.wantErr == "" {
				require.NoError(t, err)
				require.Equal(t, want, k.ID())
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
			require.Nil(t, k)
			if in := strings.TrimSpace(tt.in); in != "" {
				require.NotContains(t, err.Error(), in, "error echoes the value")
			}
		})
	}
}

func TestKEKID(t *testing.T) {
	k := testKEK(t)
	require.Regexp(t, `^kek-[0-9a-f]{16}$`, k.ID())
	other, err := newKEK(bytes.Repeat([]byte{1}, kekSize))
	require.NoError(t, err)
	require.NotEqual(t, k.ID(), other.ID())
	require.NotContains(t, k.ID(), hex.EncodeToString(testKEKBytes())[:16])
}

func TestKEKDoesNotLeak(t *testing.T) {
	k := testKEK(t)
	raw := testKEKBytes()
	secrets := []string{
		hex.EncodeToString(raw), base64.StdEncoding.EncodeToString(raw),
		base64.RawURLEncoding.EncodeToString(raw), fmt.Sprint(raw), string(raw),
	}
	var logged bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logged, nil))
	logger.Info("kek", "ptr", k, "val", *k)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("kek", "ptr", k, "val", *k)
	js, err := json.Marshal(struct{ K *KEK }{k})
	require.NoError(t, err)
	outputs := map[string]string{
		"log": logged.String(), "json": string(js),
		"%v": fmt.Sprintf("%v", k), "%+v": fmt.Sprintf("%+v", k), "%#v": fmt.Sprintf("%#v", k),
		"%s": fmt.Sprintf("%s", k), "%x": fmt.Sprintf("%x", k), "%q": fmt.Sprintf("%q", k),
		"value %+v": fmt.Sprintf("%+v", *k), "value %#v": fmt.Sprintf("%#v", *k),
		"in struct": fmt.Sprintf("%+v", struct{ K *KEK }{k}),
	}
	for name, out := range outputs {
		t.Run(name, func(t *testing.T) {
			require.Contains(t, out, k.ID())
			for _, s := range secrets {
				require.NotContains(t, out, s)
			}
		})
	}
	require.Equal(t, "KEK("+k.ID()+")", k.String())
}

func TestLoadKEKFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	require.NoError(t, os.WriteFile(good, []byte(base64.StdEncoding.EncodeToString(testKEKBytes())+"\n"), 0o600))
	k, err := LoadKEKFile(good)
	require.NoError(t, err)
	require.Equal(t, testKEK(t).ID(), k.ID())

	bad := filepath.Join(dir, "bad")
	secret := hex.EncodeToString(testKEKBytes()[:20])
	require.NoError(t, os.WriteFile(bad, []byte(secret), 0o600))
	_, err = LoadKEKFile(bad)
	require.ErrorContains(t, err, "got 20 after hex")
	require.ErrorContains(t, err, bad)
	require.NotContains(t, err.Error(), secret)

	_, err = LoadKEKFile(filepath.Join(dir, "missing"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestCreateKEKFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secrets", "dev", "kek")
	k, err := CreateKEKFile(path)
	require.NoError(t, err)

	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	for _, dir := range []string{filepath.Dir(path), filepath.Dir(filepath.Dir(path))} {
		di, err := os.Stat(dir)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o700), di.Mode().Perm(), dir)
	}

	loaded, err := LoadKEKFile(path)
	require.NoError(t, err)
	require.Equal(t, k.ID(), loaded.ID())

	_, err = CreateKEKFile(path)
	require.ErrorIs(t, err, os.ErrExist, "an existing KEK must never be overwritten")
	again, err := LoadKEKFile(path)
	require.NoError(t, err)
	require.Equal(t, k.ID(), again.ID())
}

func TestKEKSealOpen(t *testing.T) {
	k := testKEK(t)
	sealed := k.seal([]byte("private"), []byte("kid"))
	require.Len(t, sealed, 12+len("private")+16)
	got, err := k.open(sealed, []byte("kid"))
	require.NoError(t, err)
	require.Equal(t, "private", string(got))
	require.NotEqual(t, sealed, k.seal([]byte("private"), []byte("kid")), "nonces must be random")
	_, err = k.open(sealed, []byte("other kid"))
	require.Error(t, err)
}

func FuzzParseKEK(f *testing.F) {
	raw := testKEKBytes()
	for _, s := range []string{
		"", " ", "=", "==", hex.EncodeToString(raw), base64.StdEncoding.EncodeToString(raw),
		base64.RawURLEncoding.EncodeToString(raw), base64.StdEncoding.EncodeToString(raw[:31]),
		strings.Repeat("g", 64), strings.Repeat("A", 43) + "=", "\x00\xff",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseKEK(s)
		if err != nil {
			if k != nil {
				t.Fatal("non-nil KEK with an error")
			}
			if in := strings.TrimSpace(s); len(in) >= 8 && strings.Contains(err.Error(), in) {
				t.Fatalf("error echoes the input: %v", err)
			}
			return
		}
		if !strings.HasPrefix(k.ID(), "kek-") || len(k.ID()) != len("kek-")+16 {
			t.Fatalf("bad ID %q", k.ID())
		}
		if strings.Contains(fmt.Sprintf("%#v %+v", k, *k), strings.TrimSpace(s)) {
			t.Fatal("formatting echoes the key")
		}
	})
}
