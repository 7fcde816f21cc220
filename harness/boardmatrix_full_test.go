//go:build boardmatrix

package harness

// fullBoardMatrix: -tags boardmatrix boots the system target for every
// cell of the board matrix (make test-boards).
const fullBoardMatrix = true
