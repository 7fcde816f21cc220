package attest

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	testresult "github.com/in-toto/attestation/go/predicates/test_result/v0"
	intoto "github.com/in-toto/attestation/go/v1"

	"github.com/hilproject/hil/harness/promote"
)

// Entry is one attestation found on a digest and what reading it gave.
type Entry struct {
	Found
	// Signed: the envelope carries a signature. Verified: it holds for the
	// key given (always false without a key).
	Signed, Verified bool
	// Statement is the envelope's statement (nil when it could not be
	// read); TestResult and Detail its predicate, by type.
	Statement  *intoto.Statement
	TestResult *testresult.TestResult
	Detail     *Detail
	Rollout    *RolloutEvent
	// Problem says why the entry cannot be trusted or read ("" when it
	// can; without a key, signatures are not judged).
	Problem string
}

// Inspect finds every attestation attached to the digest ref points at
// and reads each: with a key, an entry's statement is read only when its
// signature holds; without one, statements are read unverified (for
// display). Statements about another digest are flagged.
func Inspect(ctx context.Context, reg *promote.Registry, ref string, key *Verifier) (name.Digest, []Entry, error) {
	subject, desc, found, err := Find(ctx, reg, ref)
	if err != nil {
		return subject, nil, err
	}
	var out []Entry
	for _, f := range found {
		e := Entry{Found: f, Signed: isSigned(f.Envelope)}
		st, err := Open(f.Envelope, key)
		switch {
		case errors.Is(err, ErrUnsigned):
			e.Problem = "not signed (the gate ran without --sign-key)"
		case err != nil:
			e.Problem = err.Error()
		default:
			e.Verified = key != nil
			e.Statement = st
			if !aboutDigest(st, desc.Digest.Hex) {
				e.Problem = fmt.Sprintf("the statement is about %s, not %s (copied from another image?)", subjects(st), subject.DigestStr())
				break
			}
			switch st.GetPredicateType() {
			case TestResultPredicateType:
				e.TestResult, err = ParseTestResult(st)
			case DetailPredicateType, DetailPredicateTypeV1:
				e.Detail, err = ParseDetail(st)
			case RolloutPredicateType:
				e.Rollout, err = ParseRollout(st)
			}
			if err != nil {
				e.Problem = err.Error()
			}
		}
		out = append(out, e)
	}
	return subject, out, nil
}

func aboutDigest(st *intoto.Statement, hex string) bool {
	for _, s := range st.GetSubject() {
		if s.GetDigest()["sha256"] == hex {
			return true
		}
	}
	return false
}

func subjects(st *intoto.Statement) string {
	var s []string
	for _, sub := range st.GetSubject() {
		s = append(s, sub.GetName()+"@sha256:"+sub.GetDigest()["sha256"])
	}
	return strings.Join(s, ", ")
}

// Requirements are what a verified test result must show.
type Requirements struct {
	// Result is the weakest result accepted: Passed (the default) accepts
	// PASSED only, Warned accepts PASSED and WARNED.
	Result string
	// Boards must each appear in at least one passed test (or warned one,
	// with Warned) and in no failed test. They are compared as the test
	// names spell them: "pi4/64" matches the tests of board pi4-64.
	Boards []string
}

func (r Requirements) normalize() (Requirements, error) {
	switch strings.ToUpper(r.Result) {
	case "", Passed:
		r.Result = Passed
	case Warned:
		r.Result = Warned
	default:
		return r, fmt.Errorf("required result %q: want PASSED or WARNED (FAILED is never accepted)", r.Result)
	}
	boards := make([]string, len(r.Boards))
	for i, b := range r.Boards {
		if b == "" || strings.Count(b, "/") > 1 {
			return r, fmt.Errorf("board %q: want a board name such as pi3b+ or pi4/64", b)
		}
		// Test names spell pi4/64 as pi4-64.
		boards[i] = BoardName(b)
	}
	r.Boards = boards
	return r, nil
}

// Verification is what Verify found.
type Verification struct {
	Subject name.Digest
	// Accepted is the newest test-result attestation that met every
	// requirement (nil when none did).
	Accepted *Entry
	// Rejected are the test-result attestations that did not, newest
	// first, each with its Problem.
	Rejected []Entry
	// Reason says why nothing was accepted ("" when something was).
	Reason string
}

// OK reports whether a signed, matching, passing attestation was found.
func (v *Verification) OK() bool { return v.Accepted != nil }

// Verify answers "is there a test-result attestation for the digest ref
// points at, signed with key, about that digest, with an acceptable
// result, covering the required boards?". An error means the question
// could not be asked (bad reference or requirements, registry
// unreachable); a Verification that is not OK says why not.
func Verify(ctx context.Context, reg *promote.Registry, ref string, key *Verifier, req Requirements) (*Verification, error) {
	if key == nil {
		return nil, errors.New("verifying needs the public key the attestations are signed with")
	}
	req, err := req.normalize()
	if err != nil {
		return nil, err
	}
	subject, entries, err := Inspect(ctx, reg, ref, key)
	if err != nil {
		return nil, err
	}
	v := &Verification{Subject: subject}
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		if e.Statement != nil && e.Statement.GetPredicateType() != TestResultPredicateType {
			continue
		}
		if e.Statement == nil && e.PredicateType != "" && e.PredicateType != TestResultPredicateType {
			continue
		}
		if e.Problem == "" {
			e.Problem = meets(e.TestResult, req)
		}
		if e.Problem == "" {
			v.Accepted = &e
			return v, nil
		}
		v.Rejected = append(v.Rejected, e)
	}
	tag, _ := AttestationTag(subject)
	switch len(v.Rejected) {
	case 0:
		v.Reason = fmt.Sprintf("no test-result attestation (%s) is attached to %s: looked for OCI referrers and at %s", TestResultPredicateType, subject, tag)
	case 1:
		v.Reason = fmt.Sprintf("the test-result attestation of %s is not acceptable: %s", subject, v.Rejected[0].Problem)
	default:
		var lines []string
		for _, e := range v.Rejected {
			lines = append(lines, "  - "+e.Created+": "+e.Problem)
		}
		v.Reason = fmt.Sprintf("none of the %d test-result attestations of %s is acceptable (newest first):\n%s", len(v.Rejected), subject, strings.Join(lines, "\n"))
	}
	return v, nil
}

// meets says what the test result lacks ("" when nothing).
func meets(tr *testresult.TestResult, req Requirements) string {
	res := tr.GetResult()
	switch {
	case res == Passed:
	case res == Warned && req.Result == Warned:
	default:
		why := fmt.Sprintf("result %s, required %s", res, req.Result)
		if req.Result == Warned {
			why += " or WARNED"
		}
		if f := tr.GetFailedTests(); len(f) > 0 {
			why += "; failed: " + strings.Join(first(f, 5), ", ")
		}
		return why
	}
	good := append([]string(nil), tr.GetPassedTests()...)
	if req.Result == Warned {
		good = append(good, tr.GetWarnedTests()...)
	}
	var missing []string
	for _, b := range req.Boards {
		if onBoard(tr.GetFailedTests(), b) > 0 {
			return fmt.Sprintf("board %s has failed tests", b)
		}
		if onBoard(good, b) == 0 {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		return fmt.Sprintf("no passed test on board %s (tested boards: %s)", strings.Join(missing, ", "), listOr(boardsOf(append(good, tr.GetFailedTests()...)), "none named"))
	}
	return ""
}

func onBoard(tests []string, board string) int {
	n := 0
	for _, t := range tests {
		if _, _, b, _, err := ParseTestName(t); err == nil && b == board {
			n++
		}
	}
	return n
}

func boardsOf(tests []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, t := range tests {
		if _, _, b, _, err := ParseTestName(t); err == nil && b != "" && !seen[b] {
			seen[b] = true
			out = append(out, b)
		}
	}
	return out
}

func first(s []string, n int) []string {
	if len(s) <= n {
		return s
	}
	return append(append([]string(nil), s[:n]...), fmt.Sprintf("and %d more", len(s)-n))
}

func listOr(s []string, none string) string {
	if len(s) == 0 {
		return none
	}
	return strings.Join(s, ", ")
}
