package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
)

// ownerKey is the file, beside inputs/ and outputs/, that names the database whose jobs the files
// of a shared file store (a bucket prefix) belong to. The start-up sweep deletes every file its
// database does not claim, so a second vidgen with a database of its own on the same prefix would
// delete the first one's videos: the marker makes it refuse to start instead.
const ownerKey = "vidgen-owner"

// errFilesOwned is a file store whose owner marker names another database.
var errFilesOwned = errors.New("the files belong to another vidgen database")

// claimFiles makes the file store the files of database id: it writes the owner marker when there is
// none (a new prefix, or one from before markers), and refuses with errFilesOwned, and the fix in
// the message, when the marker names another database. where names the store for the message.
// Nodes on one database share its id, so each passes.
func claimFiles(ctx context.Context, files fileStore, id, where string) error {
	b, err := readStored(ctx, files, ownerKey, 256)
	if errors.Is(err, fs.ErrNotExist) {
		if err := files.Put(ctx, ownerKey, strings.NewReader(id+"\n"), int64(len(id)+1)); err != nil {
			return fmt.Errorf("mark %s as this database's: %w", where, err)
		}
		// Read back: of two servers that started at once on a new prefix, the one whose marker lost
		// is refused here.
		b, err = readStored(ctx, files, ownerKey, 256)
	}
	if err != nil {
		return fmt.Errorf("read the owner marker of %s: %w", where, err)
	}
	if owner := strings.TrimSpace(string(b)); owner != id {
		return fmt.Errorf("%w: %s is in use by another vidgen, whose database (id %s) is not this one (id %s); give each server its own prefix, or share one -database (Postgres) between them",
			errFilesOwned, where, owner, id)
	}
	return nil
}

// claimSharedFiles makes the server's files its database's (claimFiles) when they are in a bucket,
// which may be shared by mistake with another vidgen; the disk's files are in the data directory,
// which its lock keeps to one server.
func (s *server) claimSharedFiles(ctx context.Context) error {
	if s.files.Kind() == "disk" {
		return nil
	}
	id, err := s.store.InstallID(ctx, s.rand)
	if err != nil {
		return err
	}
	return claimFiles(ctx, s.files, id, s.cfg.Files)
}
