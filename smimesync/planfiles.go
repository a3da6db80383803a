package smimesync

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/smimesync/go-smimesync/internal/atomicfile"
)

// SinkPlaceholder in a plan file's name stands for the sink's name (see
// [PlanFileNames]): with several Syncers, one per sink, each has a plan
// file of its own, as each has a state of its own.
const SinkPlaceholder = "{sink}"

// PlanFileNames returns the plan file of each sink, by name: name with
// [SinkPlaceholder] replaced by the sink's name, made absolute. With
// several sinks, name must hold SinkPlaceholder (else one plan would
// overwrite the other); the error says so, naming the sinks.
func PlanFileNames(name string, sinks []string) (map[string]string, error) {
	if len(sinks) > 1 && !strings.Contains(name, SinkPlaceholder) {
		return nil, fmt.Errorf("%s: %d sinks (%s), each with a plan of its own: put %s in the name (for example plan.%s.json)",
			name, len(sinks), strings.Join(sinks, ", "), SinkPlaceholder, SinkPlaceholder)
	}
	out := map[string]string{}
	for _, s := range sinks {
		p, err := filepath.Abs(strings.ReplaceAll(name, SinkPlaceholder, s))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out[s] = p
	}
	return out, nil
}

// WritePlanFile saves p to the file at path (see [Plan.WriteTo]) for
// [ReadPlanFile]: atomically (a crash leaves the old file or the new one,
// never a part) and mode 0600, since a plan names people and holds their
// certificates. It streams the plan: a large one is not held in memory
// twice.
func WritePlanFile(path string, p *Plan) error {
	err := atomicfile.WriteWith(path, 0o600, func(w io.Writer) error {
		_, err := p.WriteTo(w)
		return err
	})
	if err != nil {
		return fmt.Errorf("saving the plan: %w", err)
	}
	return nil
}

// ReadPlanFile reads the plan [WritePlanFile] saved at path (see
// [ReadPlan]). A file that is not such a plan is refused with an error
// wrapping [ErrPlanFile]; one that cannot be opened, with the error of
// os.Open (wrapping fs.ErrNotExist when there is none).
func ReadPlanFile(path string) (*Plan, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadPlan(f)
}
