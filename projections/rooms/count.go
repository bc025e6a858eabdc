package rooms

import (
	"context"
	"database/sql"
	"fmt"
)

// Count returns how many rooms there are and how many occupants they
// have in all, for the metrics: two counts of small tables (a row per
// room, a row per occupant), read at scrape time.
func Count(ctx context.Context, db *sql.DB) (rooms, occupants int64, err error) {
	if err := db.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM rooms), (SELECT count(*) FROM room_occupants)`).
		Scan(&rooms, &occupants); err != nil {
		return 0, 0, fmt.Errorf("rooms: count: %w", err)
	}
	return rooms, occupants, nil
}
