package archive

// WithRoomBatch returns a copy of r that lists an account's rooms n at a
// time (see roomBatch), so that a test with a few rooms reads past the
// first batch.
func WithRoomBatch(r *Reader, n int) *Reader {
	c := *r
	c.roomBatch = n
	return &c
}
