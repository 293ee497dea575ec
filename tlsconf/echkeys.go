package tlsconf

import (
	"bytes"
	"crypto/ecdh"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// echKeySet holds the ECH keys of one public name, newest first. Rotation is
// lazy: the handshake callback and SelfRecords notice that the schedule is due
// and rotate then, so no goroutine is needed and the published list and the
// retry key change at the same moment.
type echKeySet struct {
	publicName string
	path       string
	rotate     time.Duration // <= 0: never
	grace      time.Duration
	now        func() time.Time
	onChange   func(string, ...any)

	mu    sync.Mutex // serialises rotation and disk writes
	state atomic.Pointer[echState]
}

// echState is an immutable snapshot of the key set.
type echState struct {
	keys    []storedKey // newest first
	tlsKeys []tls.EncryptedClientHelloKey
	list    []byte    // ECHConfigList with the newest config, for DNS
	due     time.Time // next rotation or expiry; zero means never
}

type storedKey struct {
	Config     []byte    `json:"config"`
	PrivateKey []byte    `json:"private_key"`
	Created    time.Time `json:"created"`
}

type keyFile struct {
	PublicName string      `json:"public_name"`
	Keys       []storedKey `json:"keys"`
}

func echKeyPath(stateDir, publicName string) string {
	return filepath.Join(stateDir, "ech", publicName+".json")
}

func newECHKeySet(stateDir, publicName string, rotate, grace time.Duration, now func() time.Time, logf func(string, ...any)) (*echKeySet, error) {
	if err := checkPublicName(publicName); err != nil {
		return nil, err
	}
	s := &echKeySet{publicName: publicName, path: echKeyPath(stateDir, publicName),
		rotate: rotate, grace: grace, now: now, onChange: logf}
	if err := s.load(false); err != nil {
		return nil, err
	}
	return s, nil
}

// load reads the key file (creating a first key when there is none) and
// applies the rotation schedule; force rotates regardless of the schedule.
func (s *echKeySet) load(force bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys, err := readKeyFile(s.path, s.publicName)
	if err != nil {
		return err
	}
	return s.updateLocked(keys, force)
}

func readKeyFile(path, publicName string) ([]storedKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("tlsconf: reading ECH keys: %w", err)
	}
	var f keyFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("tlsconf: decoding ECH keys %s: %w", path, err)
	}
	for i, k := range f.Keys {
		if err := checkStoredKey(k, publicName); err != nil {
			return nil, fmt.Errorf("tlsconf: ECH key %d in %s: %w", i, path, err)
		}
	}
	return f.Keys, nil
}

// checkStoredKey rejects a key whose config does not parse, names another
// public name, or does not match its private key.
func checkStoredKey(k storedKey, publicName string) error {
	cfgs, err := ParseECHConfigList(MarshalECHConfigList(k.Config))
	if err != nil || len(cfgs) != 1 {
		return errECHConfig
	}
	if cfgs[0].PublicName != publicName || cfgs[0].KEM != kemX25519 {
		return fmt.Errorf("config is for %q, KEM %#x", cfgs[0].PublicName, cfgs[0].KEM)
	}
	priv, err := ecdh.X25519().NewPrivateKey(k.PrivateKey)
	if err != nil {
		return err
	}
	if !bytes.Equal(priv.PublicKey().Bytes(), cfgs[0].PublicKey) {
		return errors.New("private key does not match config")
	}
	return nil
}

// current returns the snapshot, rotating first when the schedule is due.
func (s *echKeySet) current() *echState {
	st := s.state.Load()
	if st.due.IsZero() || s.now().Before(st.due) {
		return st
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st = s.state.Load()
	if !st.due.IsZero() && !s.now().Before(st.due) {
		if err := s.updateLocked(st.keys, false); err != nil {
			s.onChange("ECH key rotation failed; keeping current keys", "err", err)
		}
	}
	return s.state.Load()
}

// updateLocked rotates and expires keys as the schedule says, persists any
// change and publishes a new snapshot.
func (s *echKeySet) updateLocked(keys []storedKey, force bool) error {
	now := s.now()
	keys = append([]storedKey(nil), keys...)
	changed := false
	if force || len(keys) == 0 || (s.rotate > 0 && !now.Before(keys[0].Created.Add(s.rotate))) {
		k, err := GenerateECHKey(s.publicName, unusedID(keys))
		if err != nil {
			return err
		}
		keys = append([]storedKey{{Config: k.Config, PrivateKey: k.PrivateKey, Created: now}}, keys...)
		changed = true
		s.onChange("new ECH key", "public_name", s.publicName, "config_id", k.ID)
	}
	// A replaced key stays valid for the grace period after its successor
	// was created, so that clients holding cached DNS answers still succeed.
	for i := 1; i < len(keys); i++ {
		if !now.Before(keys[i-1].Created.Add(s.grace)) {
			keys = keys[:i]
			changed = true
			break
		}
	}
	if changed {
		if err := writeKeyFile(s.path, keyFile{PublicName: s.publicName, Keys: keys}); err != nil {
			return err
		}
	}
	s.state.Store(newECHState(keys, s.rotate, s.grace))
	return nil
}

func newECHState(keys []storedKey, rotate, grace time.Duration) *echState {
	st := &echState{keys: keys, list: MarshalECHConfigList(keys[0].Config)}
	for i, k := range keys {
		// Only the newest key is offered to rejected clients (RFC 9849 §6.1.6
		// retry_configs); older ones are still tried for decryption.
		st.tlsKeys = append(st.tlsKeys, tls.EncryptedClientHelloKey{
			Config: k.Config, PrivateKey: k.PrivateKey, SendAsRetry: i == 0})
	}
	earliest := func(t time.Time) {
		if st.due.IsZero() || t.Before(st.due) {
			st.due = t
		}
	}
	if rotate > 0 {
		earliest(keys[0].Created.Add(rotate))
	}
	for i := 1; i < len(keys); i++ {
		earliest(keys[i-1].Created.Add(grace))
	}
	return st
}

// unusedID picks a config_id no held key uses, so that stacks which select
// keys by ID (unlike Go) never confuse an old key with a new one.
func unusedID(keys []storedKey) uint8 {
	used := map[uint8]bool{}
	for _, k := range keys {
		if len(k.Config) > 4 {
			used[k.Config[4]] = true
		}
	}
	id := uint8(len(keys))
	if len(keys) > 0 && len(keys[0].Config) > 4 {
		id = keys[0].Config[4] + 1
	}
	// With all 256 IDs held (hundreds of keygens within one grace period)
	// an ID is shared rather than loop forever.
	for range 256 {
		if !used[id] {
			break
		}
		id++
	}
	return id
}

// writeKeyFile replaces the key file atomically, readable by the owner only.
func writeKeyFile(path string, f keyFile) error {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("tlsconf: creating ECH key directory: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("tlsconf: writing ECH keys: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("tlsconf: writing ECH keys: %w", err)
	}
	return nil
}

// ECHKeygen adds a new ECH key for publicName to the key file in stateDir,
// making it the current one (the previous key enters its grace period), and
// returns the new ECHConfigList to publish. It is what `lamina ech keygen`
// runs; a running server picks the key up on its next Reload.
func ECHKeygen(stateDir, publicName string) ([]byte, error) {
	if stateDir == "" {
		return nil, errors.New("tlsconf: ECH keygen needs a state directory")
	}
	if err := checkPublicName(publicName); err != nil {
		return nil, err
	}
	s := &echKeySet{publicName: publicName, path: echKeyPath(stateDir, publicName),
		grace: defaultECHGrace, now: time.Now, onChange: func(string, ...any) {}}
	s.mu.Lock()
	defer s.mu.Unlock()
	keys, err := readKeyFile(s.path, publicName)
	if err != nil {
		return nil, err
	}
	if err := s.updateLocked(keys, len(keys) > 0); err != nil {
		return nil, err
	}
	return s.state.Load().list, nil
}
