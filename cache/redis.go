package cache

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// RedisConfig enables a second-level cache in Redis, shared by every Lamina
// instance behind one address: local LRU first, then Redis, then upstream.
type RedisConfig struct {
	// URL locates the server in redis.ParseURL's form:
	// redis://[user:password@]host:port[/db], or rediss:// for TLS. Required.
	URL string

	// Prefix starts every key and names the flush channel; instances that
	// share a cache share it. "" means "lamina:cache:". Entries carry their
	// absolute expiry, so the instances' clocks should agree (NTP).
	Prefix string

	// Timeout bounds each Redis operation on the query path; 0 means 50 ms.
	// After a failure Redis is skipped for a second, so a dead or slow
	// server costs at most one Timeout per second, never a failed query.
	Timeout time.Duration

	// Logger reports Redis going down and coming back; nil discards.
	Logger *slog.Logger
}

const (
	redisRetry        = time.Second     // how long a failed Redis is skipped
	redisFlushTimeout = 5 * time.Second // flushes scan the keyspace
	redisHeader       = 8 + 4 + 1       // expiry (unix ns), TTL (s), kind
)

// redisL2 is the shared level. Values are the entry's packed response
// preceded by its absolute expiry, so every instance decays TTLs alike.
type redisL2 struct {
	rdb     *redis.Client
	sub     *redis.PubSub
	prefix  string
	channel string
	self    string // this instance, to ignore its own flush messages
	timeout time.Duration
	log     *slog.Logger
	done    chan struct{}

	downUntil           atomic.Int64 // unix ns; Redis is skipped before it
	hits, misses, fails atomic.Uint64

	closeOnce sync.Once
	closed    atomic.Bool
	closeErr  error
}

func newRedis(cfg RedisConfig, c *Cache) (*redisL2, error) {
	opt, err := redis.ParseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("cache: redis URL: %w", err)
	}
	timeout := orDefault(cfg.Timeout, 50*time.Millisecond)
	if timeout < 0 {
		return nil, errors.New("cache: negative redis timeout")
	}
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout, opt.PoolTimeout = timeout, timeout, timeout, timeout
	opt.ContextTimeoutEnabled = true
	opt.MaxRetries = -1 // a retry would break the time bound
	opt.DialerRetries = 1
	opt.DisableIdentity = true
	opt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	var id [8]byte
	rand.Read(id[:])
	l := &redisL2{
		rdb:     redis.NewClient(opt),
		prefix:  orDefault(cfg.Prefix, "lamina:cache:"),
		self:    hex.EncodeToString(id[:]),
		timeout: timeout,
		log:     cfg.Logger,
		done:    make(chan struct{}),
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	l.log = l.log.With("component", "cache", "redis", opt.Addr)
	l.channel = l.prefix + "flush"
	// Subscribe connects in the background and reconnects by itself; an
	// unreachable server at start is not an error, only a fallback.
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	l.sub = l.rdb.Subscribe(ctx, l.channel)
	cancel()
	msgs := l.sub.Channel()
	go func() {
		defer close(l.done)
		for m := range msgs {
			l.onFlush(m.Payload, c)
		}
	}()
	return l, nil
}

// onFlush applies another instance's flush: "<id>" flushes everything,
// "<id> <name>" one name.
func (l *redisL2) onFlush(payload string, c *Cache) {
	from, name, one := strings.Cut(payload, " ")
	if from == l.self {
		return
	}
	if one {
		c.flushNameLocal(name)
	} else {
		c.flushLocal()
	}
}

func (l *redisL2) up(now int64) bool { return now >= l.downUntil.Load() && !l.closed.Load() }

func (l *redisL2) fail(now int64, err error) {
	l.fails.Add(1)
	if l.downUntil.Swap(now+int64(redisRetry)) <= now {
		l.log.Warn("redis unavailable, using the local cache only", "err", err)
	}
}

// get fetches key's entry, or nil.
func (l *redisL2) get(key []byte, now int64) entry {
	if !l.up(now) {
		l.fails.Add(1)
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	defer cancel()
	v, err := l.rdb.Get(ctx, l.prefix+string(key)).Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		l.misses.Add(1)
		return nil
	case err != nil:
		l.fail(now, err)
		return nil
	case len(v) < redisHeader:
		l.misses.Add(1)
		return nil
	}
	k := kind(v[12])
	e, ok := entryFromWire(v[redisHeader:], key[len(key)-1], k,
		binary.BigEndian.Uint32(v[8:]), int64(binary.BigEndian.Uint64(v)))
	if !ok || !e.matches(key) || (k != positive && k != negative) {
		l.misses.Add(1) // not ours or damaged: ignore it
		return nil
	}
	l.hits.Add(1)
	return e
}

// put shares e, keeping it in Redis through its serve-stale window.
func (l *redisL2) put(key []byte, e entry, now, maxStale int64) {
	if e.kind() == servFail { // failures stay local (RFC 8767 §5 keeps stale data)
		return
	}
	life := time.Duration(e.expire() - now + max(maxStale, 0))
	if life < time.Millisecond {
		return
	}
	if !l.up(now) {
		l.fails.Add(1)
		return
	}
	v := make([]byte, redisHeader, redisHeader+e.wireLen())
	binary.BigEndian.PutUint64(v, uint64(e.expire()))
	binary.BigEndian.PutUint32(v[8:], e.ttl())
	v[12] = byte(e.kind())
	v = append(v, e.wire()...)
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	defer cancel()
	if err := l.rdb.Set(ctx, l.prefix+string(key), v, life).Err(); err != nil {
		l.fail(now, err)
	}
}

// flush deletes the keys of one name (name is its lower-cased wire form),
// or all keys when name is nil, and tells the other instances.
func (l *redisL2) flush(name []byte, presentation string) error {
	ctx, cancel := context.WithTimeout(context.Background(), redisFlushTimeout)
	defer cancel()
	msg := l.self
	match := globEscape(l.prefix) + "*"
	if name != nil {
		msg += " " + presentation
		match = globEscape(l.prefix) + globEscape(string(name)) + "?????" // type, class, flags
	}
	// Delete first, then tell the others: told first, they could refill
	// from keys not yet deleted.
	var cursor uint64
	var err error
	for i := 0; i < 1_000_000; i++ {
		var keys []string
		if keys, cursor, err = l.rdb.Scan(ctx, cursor, match, 1000).Result(); err == nil && len(keys) > 0 {
			err = l.rdb.Unlink(ctx, keys...).Err()
		}
		if err != nil || cursor == 0 {
			break
		}
	}
	if err == nil {
		err = l.rdb.Publish(ctx, l.channel, msg).Err()
	}
	if err != nil {
		l.fails.Add(1)
		return fmt.Errorf("cache: flushing redis: %w", err)
	}
	return nil
}

func (l *redisL2) close() error {
	l.closeOnce.Do(func() {
		l.closed.Store(true)
		err := l.sub.Close()
		<-l.done
		l.closeErr = errors.Join(err, l.rdb.Close())
	})
	return l.closeErr
}

// globEscape quotes s for a Redis MATCH pattern.
func globEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
