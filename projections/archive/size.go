package archive

import (
	"context"
	"database/sql"
	"fmt"
)

// Size returns how many messages the archives hold, for the metrics: a
// row per archived copy (a 1:1 message in each party's archive, a room's
// message once in the room's). SQLite counts by walking the table's
// smallest index, tens of millions of rows a second: fine once a scrape,
// not on a path a client waits on.
func Size(ctx context.Context, db *sql.DB) (int64, error) {
	var n int64
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM archive`).Scan(&n); err != nil {
		return 0, fmt.Errorf("archive: size: %w", err)
	}
	return n, nil
}
