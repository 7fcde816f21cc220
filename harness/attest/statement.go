package attest

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	testresult "github.com/in-toto/attestation/go/predicates/test_result/v0"
	intoto "github.com/in-toto/attestation/go/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/hilproject/hil/harness/promote"
)

const (
	// TestResultPredicateType is in-toto's test-result predicate.
	TestResultPredicateType = "https://in-toto.io/attestation/test-result/v0.1"
	// DetailPredicateType is hil's own predicate with every verdict's
	// reason, each static check once and the runner's step results, about
	// the same subject. v2 spells its keys in snake_case, as every file
	// hil writes; v1 statements (camelCase) are still read.
	DetailPredicateType = "https://hil.dev/test-detail/v2"
	// DetailPredicateTypeV1 is the detail predicate before v2.
	DetailPredicateTypeV1 = "https://hil.dev/test-detail/v1"
	// PayloadType is the DSSE payload type of an in-toto statement, and
	// the artifactType of the OCI referrer that holds the envelopes.
	PayloadType = "application/vnd.in-toto+json"
)

// The test-result predicate's result values.
const (
	Passed = "PASSED"
	Warned = "WARNED"
	Failed = "FAILED"
)

// TestName names a case the way passedTests, warnedTests and failedTests
// list it: scenario/target/board/platform, e.g.
// "dhcp-basic/system/pi3b+/linux/arm64". The board is "virt" for a system
// case without a board and empty for other targets without one
// ("startup/container//linux/amd64"). Scenario, target and board names
// hold no slash (a board's OS word size is written pi4-64, see
// BoardName), so the platform is everything after the third one.
func TestName(o promote.Outcome) string {
	return o.Scenario + "/" + o.Target + "/" + BoardName(o.Board) + "/" + o.Platform
}

// BoardName is a board as test names spell it: "pi3b+", and "pi4-64" for
// "pi4/64" (a test name's fields are separated by slashes).
func BoardName(b string) string { return strings.ReplaceAll(b, "/", "-") }

// ParseTestName splits a name made by TestName.
func ParseTestName(s string) (scenario, target, board, platform string, err error) {
	f := strings.SplitN(s, "/", 4)
	if len(f) != 4 {
		return "", "", "", "", fmt.Errorf("test name %q: want scenario/target/board/platform", s)
	}
	return f[0], f[1], f[2], f[3], nil
}

// Detail is hil's own predicate (DetailPredicateType): what the
// test-result predicate has no field for.
type Detail struct {
	// Result is the test-result statement's result, repeated.
	Result string `json:"result"`
	Reason string `json:"reason"`
	// Candidate is the reference the gate was given (a registry
	// reference).
	Candidate string `json:"candidate"`
	// Platforms are the required platforms; PlatformsPresent all those
	// the artifact holds.
	Platforms        []string `json:"platforms"`
	PlatformsPresent []string `json:"platforms_present,omitempty"`
	// Boards are the required boards and what each pulled ("pi0w pulls
	// linux/arm/v5").
	Boards   []string          `json:"boards,omitempty"`
	Targets  []string          `json:"targets,omitempty"`
	Outcomes []promote.Outcome `json:"outcomes"`
	// StaticChecks are the static startup checks, each once with its
	// problems (the outcomes' reasons name them).
	StaticChecks []promote.StaticCheck `json:"static_checks,omitempty"`
	Attempts     int                   `json:"attempts,omitempty"`
	HIL          struct {
		Version string `json:"version"`
	} `json:"hil"`
	URL      string    `json:"url,omitempty"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// Report is the runner's per-case results without the app's output.
	Report json.RawMessage `json:"report,omitempty"`
}

// Run is what a statement says beyond the gate's decision.
type Run struct {
	// URL is the CI run that tested (RunURLFromEnv, or given).
	URL string
	// Tool describes the tester (hil, its version and binary digest); it
	// leads the configuration. Without it: "hil" at the decision's version.
	Tool *promote.Resource
}

// Statements are the test-result and the detail statements about the
// digest the gate tested, validated with in-toto's types.
func Statements(pin promote.Pinned, d *promote.Decision, run Run) (testResult, detail *intoto.Statement, err error) {
	if pin.Descriptor.Digest.Algorithm != "sha256" || pin.Descriptor.Digest.Hex == "" {
		return nil, nil, fmt.Errorf("the tested artifact has digest %q; want a sha256 digest", pin.Descriptor.Digest)
	}
	subject := []*intoto.ResourceDescriptor{{
		Name:   pin.Digest.Context().Name(),
		Digest: map[string]string{"sha256": pin.Descriptor.Digest.Hex},
	}}

	res, passed, warned, failed := Tally(d)
	conf, err := configuration(d, run)
	if err != nil {
		return nil, nil, err
	}
	tr := &testresult.TestResult{
		Result:        res,
		Configuration: conf,
		Url:           run.URL,
		PassedTests:   passed,
		WarnedTests:   warned,
		FailedTests:   failed,
	}
	trStruct, err := protoStruct(tr)
	if err != nil {
		return nil, nil, err
	}
	testResult = &intoto.Statement{
		Type:          intoto.StatementTypeUri,
		Subject:       subject,
		PredicateType: TestResultPredicateType,
		Predicate:     trStruct,
	}
	if err := testResult.Validate(); err != nil {
		return nil, nil, fmt.Errorf("the test-result statement is not valid in-toto: %w", err)
	}

	det := Detail{
		Result:           res,
		Reason:           d.Reason,
		Candidate:        d.Candidate,
		PlatformsPresent: d.Platforms,
		Boards:           d.Boards,
		Targets:          d.Result.Targets,
		Outcomes:         d.Result.Outcomes,
		StaticChecks:     d.Result.StaticChecks,
		Attempts:         d.Attempts,
		URL:              run.URL,
		Started:          d.Result.Started,
		Finished:         d.Result.Finished,
		Report:           d.Result.Report,
	}
	if res != Failed {
		det.Reason = "every required platform passed"
		if len(d.Boards) > 0 {
			det.Reason = "every required board passed"
		}
	}
	for _, p := range pin.Required {
		det.Platforms = append(det.Platforms, p.String())
	}
	det.HIL.Version = d.Version
	detStruct, err := jsonStruct(det)
	if err != nil {
		return nil, nil, err
	}
	detail = &intoto.Statement{
		Type:          intoto.StatementTypeUri,
		Subject:       subject,
		PredicateType: DetailPredicateType,
		Predicate:     detStruct,
	}
	if err := detail.Validate(); err != nil {
		return nil, nil, fmt.Errorf("the detail statement is not valid in-toto: %w", err)
	}
	return testResult, detail, nil
}

// Tally sorts the decision's cases into the predicate's lists: a pass is
// passed; an optional unsupported (a step the target cannot do, which does
// not refuse) is warned; everything that refused (fail, infra-error,
// required unsupported, a required platform nothing covered) is failed.
// The result is FAILED when anything failed, WARNED when anything warned,
// else PASSED.
func Tally(d *promote.Decision) (result string, passed, warned, failed []string) {
	for _, o := range d.Result.Outcomes {
		switch {
		case o.Verdict == promote.Pass:
			passed = append(passed, TestName(o))
		case o.Verdict == promote.Unsupported && o.Optional:
			warned = append(warned, TestName(o))
		}
	}
	for _, o := range d.Failures {
		failed = append(failed, TestName(o))
	}
	passed, warned, failed = uniq(passed), uniq(warned), uniq(failed)
	switch {
	case len(failed) > 0:
		result = Failed
	case len(warned) > 0:
		result = Warned
	case len(passed) == 0:
		// Nothing ran and nothing refused: no evidence is no pass.
		result, failed = Failed, []string{"(none)///"}
	default:
		result = Passed
	}
	return result, passed, warned, failed
}

func uniq(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	sort.Strings(s)
	out := s[:1]
	for _, v := range s[1:] {
		if v != out[len(out)-1] {
			out = append(out, v)
		}
	}
	return out
}

// configuration lists the tester first, then the runner's inputs, then
// any replayed fixture the runner did not list, each once, in a stable
// order.
func configuration(d *promote.Decision, run Run) ([]*intoto.ResourceDescriptor, error) {
	// The tester leads; without a description of its own it is hil's
	// gate at the decision's version.
	tool := promote.Resource{Name: "hil", Kind: "hil", Annotations: map[string]string{"version": d.Version}}
	if run.Tool != nil {
		tool = *run.Tool
	}
	if tool.Annotations["version"] == "" && d.Version == "" {
		delete(tool.Annotations, "version")
	}
	rs := []promote.Resource{tool}
	rest := append([]promote.Resource(nil), d.Result.Configuration...)
	listed := map[string]bool{}
	for _, r := range rest {
		if r.Digest["sha256"] != "" {
			listed[r.Digest["sha256"]] = true
		}
	}
	var fixtures []string
	for name := range d.Result.Fixtures {
		fixtures = append(fixtures, name)
	}
	sort.Strings(fixtures)
	for _, name := range fixtures {
		sum := d.Result.Fixtures[name]
		if sum != "" && listed[sum] {
			continue
		}
		r := promote.Resource{Name: name, Kind: "fixture"}
		if sum != "" {
			r.Digest = map[string]string{"sha256": sum}
		}
		rest = append(rest, r)
	}
	sort.SliceStable(rest, func(i, j int) bool {
		if rest[i].Kind != rest[j].Kind {
			return kindOrder(rest[i].Kind) < kindOrder(rest[j].Kind)
		}
		return rest[i].Name < rest[j].Name
	})
	rs = append(rs, rest...)

	var out []*intoto.ResourceDescriptor
	seen := map[string]bool{}
	for _, r := range rs {
		if IsLocalPath(r.Name) || IsLocalPath(r.URI) {
			return nil, fmt.Errorf("configuration entry %q (%s) names a path on this host; want a portable name", r.Name, r.Kind)
		}
		key := r.Kind + "\x00" + r.Name + "\x00" + fmt.Sprint(r.Digest)
		if seen[key] {
			continue
		}
		seen[key] = true
		rd := &intoto.ResourceDescriptor{Name: r.Name, Uri: r.URI, Digest: r.Digest}
		ann := map[string]any{}
		for k, v := range r.Annotations {
			ann[k] = v
		}
		if r.Kind != "" {
			ann["kind"] = r.Kind
		}
		if len(ann) > 0 {
			s, err := structpb.NewStruct(ann)
			if err != nil {
				return nil, fmt.Errorf("configuration entry %q: %w", r.Name, err)
			}
			rd.Annotations = s
		}
		if err := rd.Validate(); err != nil {
			return nil, fmt.Errorf("configuration entry %q (%s): %w", r.Name, r.Kind, err)
		}
		out = append(out, rd)
	}
	if len(out) == 0 {
		return nil, errors.New("the test-result predicate needs a configuration and the run named no input")
	}
	return out, nil
}

func kindOrder(k string) int {
	for i, o := range []string{"hil", "scenario", "fixture", "board", "kernel", "init", "emulator"} {
		if k == o {
			return i
		}
	}
	return 100
}

// IsLocalPath reports whether s looks like a path on the host that made
// it (absolute, or a home-relative ~/...), which an attestation must not
// carry: it means nothing elsewhere and leaks the build machine's layout.
func IsLocalPath(s string) bool {
	return strings.HasPrefix(s, "/") || strings.HasPrefix(s, "~/") || strings.HasPrefix(s, "file:")
}

// protoStruct turns a proto message into the Struct a Statement carries,
// through its canonical JSON (in-toto's field names: passedTests, ...).
func protoStruct(m proto.Message) (*structpb.Struct, error) {
	b, err := protojson.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encoding the predicate: %w", err)
	}
	s := &structpb.Struct{}
	if err := protojson.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("encoding the predicate: %w", err)
	}
	return s, nil
}

// jsonStruct turns a Go value into a Struct through encoding/json.
func jsonStruct(v any) (*structpb.Struct, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encoding the predicate: %w", err)
	}
	s := &structpb.Struct{}
	if err := protojson.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("encoding the predicate: %w", err)
	}
	return s, nil
}

// Marshal is the statement's canonical JSON, the bytes that get signed.
func Marshal(st *intoto.Statement) ([]byte, error) {
	b, err := protojson.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("encoding the in-toto statement: %w", err)
	}
	return b, nil
}

// ParseStatement parses and validates an in-toto statement with in-toto's
// own types: unknown fields are errors.
func ParseStatement(b []byte) (*intoto.Statement, error) {
	st := &intoto.Statement{}
	if err := protojson.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("parsing the in-toto statement: %w", err)
	}
	if err := st.Validate(); err != nil {
		return nil, fmt.Errorf("the in-toto statement is not valid: %w", err)
	}
	return st, nil
}

// ParseTestResult reads the statement's predicate as in-toto's
// test-result predicate (unknown fields are errors) and checks the fields
// the specification requires: result one of PASSED, WARNED, FAILED, and a
// configuration whose resource descriptors are valid.
func ParseTestResult(st *intoto.Statement) (*testresult.TestResult, error) {
	if st.GetPredicateType() != TestResultPredicateType {
		return nil, fmt.Errorf("predicate type is %q, want %s", st.GetPredicateType(), TestResultPredicateType)
	}
	b, err := protojson.Marshal(st.GetPredicate())
	if err != nil {
		return nil, fmt.Errorf("reading the predicate: %w", err)
	}
	tr := &testresult.TestResult{}
	if err := protojson.Unmarshal(b, tr); err != nil {
		return nil, fmt.Errorf("the predicate is not a test-result predicate: %w", err)
	}
	switch tr.GetResult() {
	case Passed, Warned, Failed:
	default:
		return nil, fmt.Errorf("test-result predicate: result %q, want PASSED, WARNED or FAILED", tr.GetResult())
	}
	if len(tr.GetConfiguration()) == 0 {
		return nil, errors.New("test-result predicate: no configuration (the specification requires one)")
	}
	for _, rd := range tr.GetConfiguration() {
		if err := rd.Validate(); err != nil {
			return nil, fmt.Errorf("test-result predicate: configuration entry %q: %w", rd.GetName(), err)
		}
	}
	return tr, nil
}

// ParseDetail reads hil's detail predicate.
func ParseDetail(st *intoto.Statement) (*Detail, error) {
	t := st.GetPredicateType()
	if t != DetailPredicateType && t != DetailPredicateTypeV1 {
		return nil, fmt.Errorf("predicate type is %q, want %s", t, DetailPredicateType)
	}
	b, err := protojson.Marshal(st.GetPredicate())
	if err != nil {
		return nil, fmt.Errorf("reading the predicate: %w", err)
	}
	var d Detail
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("the predicate is not hil's detail predicate: %w", err)
	}
	if t == DetailPredicateTypeV1 {
		// v1 spelled these in camelCase.
		var v1 struct {
			PlatformsPresent []string  `json:"platformsPresent"`
			Started          time.Time `json:"startedOn"`
			Finished         time.Time `json:"finishedOn"`
		}
		if err := json.Unmarshal(b, &v1); err == nil {
			d.PlatformsPresent, d.Started, d.Finished = v1.PlatformsPresent, v1.Started, v1.Finished
		}
	}
	return &d, nil
}
