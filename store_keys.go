package main

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Key is an API key's account. The key itself is never stored, only its SHA-256.
type Key struct {
	ID            string
	Name          string
	Prefix        string
	WebhookSecret string
	PrevSecret    string    // previous webhook secret, "" when none
	PrevUntil     time.Time // PrevSecret signs deliveries until then
	Active        bool
	CreatedAt     time.Time
}

const keyColumns = `id, name, prefix, webhook_secret, coalesce(prev_webhook_secret, ''), prev_secret_until, active, created_at`

func scanKey(row scanner) (Key, error) {
	var k Key
	var until, created sql.NullInt64
	err := row.Scan(&k.ID, &k.Name, &k.Prefix, &k.WebhookSecret, &k.PrevSecret, &until, &k.Active, &created)
	k.PrevUntil, k.CreatedAt = fromMS(until), fromMS(created)
	return k, err
}

// CreateKey stores a new account with the hash of its key. It returns ErrNameTaken when the name
// is in use.
func (s *Store) CreateKey(ctx context.Context, k Key, hash []byte) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO api_keys (id, name, key_hash, prefix, webhook_secret, active, created_at)
		VALUES (?, ?, ?, ?, ?, 1, ?)`, k.ID, k.Name, hash, k.Prefix, k.WebhookSecret, ms(k.CreatedAt))
	if s.isUniqueViolation(err) {
		return ErrNameTaken
	}
	if err != nil {
		return fmt.Errorf("create key: %w", err)
	}
	return nil
}

// KeyByHash returns the account whose key hashes to hash, active or not, or ErrNotFound.
func (s *Store) KeyByHash(ctx context.Context, hash []byte) (Key, error) {
	return one(ctx, s.db, "key by hash", ErrNotFound, scanKey, `SELECT `+keyColumns+` FROM api_keys WHERE key_hash = ?`, hash)
}

// KeyByID returns the account with the given id, or ErrNotFound.
func (s *Store) KeyByID(ctx context.Context, id string) (Key, error) {
	return one(ctx, s.db, "key by id", ErrNotFound, scanKey, `SELECT `+keyColumns+` FROM api_keys WHERE id = ?`, id)
}

// FindKey returns the account with the given id or, failing that, name; or ErrNotFound.
func (s *Store) FindKey(ctx context.Context, idOrName string) (Key, error) {
	return one(ctx, s.db, "find key", ErrNotFound, scanKey,
		`SELECT `+keyColumns+` FROM api_keys WHERE id = ? OR name = ? ORDER BY id = ? DESC LIMIT 1`, idOrName, idOrName, idOrName)
}

// ListKeys returns every account, oldest first.
func (s *Store) ListKeys(ctx context.Context) ([]Key, error) {
	return collect(ctx, s.db, "list keys", scanKey, `SELECT `+keyColumns+` FROM api_keys ORDER BY created_at, id`)
}

// DeactivateKey turns a key off; its jobs stay.
func (s *Store) DeactivateKey(ctx context.Context, id string) error {
	return s.updateKey(ctx, "deactivate key", `UPDATE api_keys SET active = 0 WHERE id = ?`, id)
}

// RotateSecret makes secret the account's webhook secret; the old one keeps signing deliveries,
// beside the new one, until prevUntil.
func (s *Store) RotateSecret(ctx context.Context, id, secret string, prevUntil time.Time) error {
	return s.updateKey(ctx, "rotate secret", `UPDATE api_keys SET prev_webhook_secret = webhook_secret,
		prev_secret_until = ?, webhook_secret = ? WHERE id = ?`, ms(prevUntil), secret, id)
}

// updateKey runs an update of one account, ErrNotFound when it matches none.
func (s *Store) updateKey(ctx context.Context, what, q string, args ...any) error {
	res, err := s.db.ExecContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// CountKeys returns how many accounts exist, active or not.
func (s *Store) CountKeys(ctx context.Context) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM api_keys`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count keys: %w", err)
	}
	return n, nil
}
