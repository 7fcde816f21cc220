//go:build !boardmatrix

package harness

// fullBoardMatrix: make test boots the system target for a few cells of
// the board matrix only (shortSystemCells); -tags boardmatrix for all.
const fullBoardMatrix = false
