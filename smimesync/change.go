package smimesync

import (
	"time"

	"github.com/smimesync/go-smimesync/cloud"
	"github.com/smimesync/go-smimesync/directory"
)

// Action is what a plan does to one recipient.
type Action string

// The actions of a [Change].
const (
	// ActionAdd: the recipient carries no certificate and gets some.
	ActionAdd Action = "add"
	// ActionReplace: the recipient's set changes (or is not known and is
	// written whole).
	ActionReplace Action = "replace"
	// ActionRemove: every certificate the recipient carries is removed.
	ActionRemove Action = "remove"
	// ActionUnchanged: the recipient already carries exactly what the
	// policy keeps; nothing is written.
	ActionUnchanged Action = "unchanged"
	// ActionSkip: the recipient is left alone; Reason says why.
	ActionSkip Action = "skip"
	// ActionDepart: the entry left the directory (see SkipDeparted) and
	// [Syncer.RemoveDeparted] is on: the values this Syncer published to
	// the recipient (Change.Removes) are taken away; everything else the
	// recipient carries stays. Once the sink acknowledges the write, the
	// Syncer forgets the entry.
	ActionDepart Action = "depart"
)

// SkipReason is the code that says why a [Change] is skipped: a short,
// stable word that scripts may rely on. What a sink says in its own words
// goes to Change.Detail, never here.
type SkipReason string

// The reasons a [Change] is skipped.
const (
	// SkipNoRecipient: no cloud recipient matches the entry.
	SkipNoRecipient SkipReason = "no-recipient"
	// SkipDeleted: the entry was deleted in the directory and nothing was
	// published for it; the Syncer forgets it. (An entry with something
	// published is SkipDeparted or ActionDepart instead.)
	SkipDeleted SkipReason = "deleted"
	// SkipDeparted: the entry left the directory (a full read no longer
	// returns it: deleted, or out of scope; or a delta reported it
	// deleted) while values this Syncer published stay on its recipient
	// (Change.Published). They are left in place: [Syncer.RemoveDeparted]
	// is off, or (Detail says which) there is nothing left to remove, or
	// the recipient now belongs to another entry. The State keeps the
	// record (Snapshot.Departed) so that every full pass shows the row
	// again, until the values are removed, the entry comes back (planning
	// resumes as usual), or Detail says it was forgotten. Error is set
	// when reading the recipient failed (the change then fails, and is
	// tried again).
	SkipDeparted SkipReason = "departed"
	// SkipConflict: another directory entry resolves to the same
	// recipient; neither is written until that is resolved (and a full
	// pass, or a change to the entry, brings it back). Error names the
	// other entries.
	SkipConflict SkipReason = "conflict"
	// SkipCurrentUnknown: the sink cannot read what the recipient carries,
	// nothing was published before, and nothing is to be published:
	// writing an empty set might remove certificates someone else put
	// there.
	SkipCurrentUnknown SkipReason = "current-unknown"
	// SkipError: looking the recipient up failed; Error says how.
	SkipError SkipReason = "error"
	// SkipReadOnly: the sink says the recipient may not be written
	// (cloud.Recipient.ReadOnly); Detail carries the sink's words, for
	// example graph.ReadOnlySynced.
	SkipReadOnly SkipReason = "read-only"
)

// Outcome is what Apply did with a [Change] that writes.
type Outcome string

// The outcomes of a [Change]. A change that writes nothing, and a plan not
// applied, have none (the empty Outcome).
const (
	// OutcomeWritten: the sink accepted the write.
	OutcomeWritten Outcome = "written"
	// OutcomeFailed: the write (or, for ActionSkip with SkipError, the
	// lookup) failed, or was not attempted because the Apply stopped
	// early; Error says which.
	OutcomeFailed Outcome = "failed"
	// OutcomeNotWritable: the sink refused the write as not allowed
	// (cloud.ErrNotWritable); nothing is retried.
	OutcomeNotWritable Outcome = "not-writable"
)

// CurrentSource says where a plan's knowledge of what a recipient carries
// now came from.
type CurrentSource string

// The sources of a recipient's current set.
const (
	// CurrentFromSink: the sink read it back.
	CurrentFromSink CurrentSource = "sink"
	// CurrentFromState: the sink cannot read it back; it is what this
	// Syncer last published to the recipient, as its State remembers.
	CurrentFromState CurrentSource = "state"
	// CurrentUnknown: neither the sink nor the State knows; a write
	// replaces whatever is there (Summary.Overwriting).
	CurrentUnknown CurrentSource = "unknown"
)

// Value is one attribute value in a [Change], with what a person needs to
// see to recognise the certificate. For a userSMIMECertificate blob the
// certificate fields describe the blob's certificate of the user's that the
// policy chose (for a dropped blob, its first end-entity certificate); they
// are empty when the value could not be parsed.
type Value struct {
	SHA256    Fingerprint `json:"sha256"`
	Attribute string      `json:"attribute"`
	Reasons   []Reason    `json:"reasons,omitempty"`
	Notes     []string    `json:"notes,omitempty"`
	// Subject and Issuer are the certificate's names as RFC 2253 strings.
	Subject string `json:"subject,omitempty"`
	Issuer  string `json:"issuer,omitempty"`
	// Serial is the certificate's serial number in decimal, as
	// Signer.Serial writes it.
	Serial string `json:"serial,omitempty"`
	// NotAfter is when the certificate expires.
	NotAfter time.Time `json:"not_after,omitzero"`
}

// Change is the plan for one directory entry and its recipient.
type Change struct {
	// ID is the directory entry's ID; User names it for people (UPN,
	// mail or DN); DN and Source are the entry's.
	ID     string `json:"id"`
	User   string `json:"user"`
	DN     string `json:"dn,omitempty"`
	Source string `json:"source,omitempty"`
	// Recipient is the cloud recipient, when found.
	Recipient *cloud.Recipient `json:"recipient,omitempty"`
	// Action is what the plan does.
	Action Action `json:"action"`
	// Reason says why a change is skipped (ActionSkip only).
	Reason SkipReason `json:"reason,omitempty"`
	// Detail is the sink's own words for a SkipReadOnly skip, or what
	// became of a departed entry's recipient (SkipDeparted); free text,
	// not a code.
	Detail string `json:"detail,omitempty"`
	// Keep and Drop are the policy's decisions on the entry's values.
	Keep []Value `json:"keep"`
	Drop []Value `json:"drop"`
	// Removes lists the certificates the recipient carries now that the
	// change takes away (when known).
	Removes []Fingerprint `json:"removes,omitempty"`
	// Published lists, for an entry that left the directory
	// (SkipDeparted, ActionDepart), the fingerprints of what this Syncer
	// had published to its recipient, as the State recorded them.
	Published []Fingerprint `json:"published,omitempty"`
	// CurrentFrom says where the recipient's current set came from
	// (empty when the change was skipped before it was read).
	CurrentFrom CurrentSource `json:"current_from,omitempty"`
	// Outcome is set by Apply; empty when nothing was to be written (and
	// in a plan).
	Outcome Outcome `json:"outcome,omitempty"`
	// Error carries a lookup or write error's text.
	Error string `json:"error,omitempty"`
	// Retried is true when the entry did not come from this read of the
	// directory but from the state: an earlier pass skipped it.
	Retried bool `json:"retried,omitempty"`
	// Memoized is true when the entry matched its [Memo] (see
	// Syncer.Reverify and Syncer.RecheckNotFound): its row (skipped as
	// SkipReadOnly, SkipCurrentUnknown or SkipNoRecipient; an unchanged
	// one has no row but is counted, see [Plan.Unlisted]) was repeated without its certificates being
	// judged or its recipient looked up, so Keep and Drop are empty and say
	// nothing about its values (the last row that judged it does), and
	// CurrentFrom is empty.
	Memoized bool `json:"memoized,omitempty"`
	// MemoValues, on a Memoized row, counts the entry's values as the row
	// that last judged it did; Summary counts them in KeptValues,
	// DroppedValues and Dropped. Nil on other rows, and when it judged no
	// value.
	MemoValues *MemoValues `json:"memo_values,omitempty"`

	desired cloud.Certificates
	// desiredFP holds desired's fingerprints: desired itself is kept only
	// for the changes Apply writes, and a planned change keeps it in the
	// plan's temporary file instead, at spilled-1 (see spill.go; 0: not
	// there).
	desiredFP [2][]Fingerprint
	spilled   int64
	prune     map[string][][]byte
	entry     *directory.Entry
	// runWide is a sink failure that every other call would meet too
	// (cloud.ErrUnavailable), or the plan's temporary file refusing the
	// values (ErrSpill): the pass stops and reports it once.
	runWide error
	// settled is set once Apply told OnChange about the change.
	settled bool
	// forget says that the record of a departed entry (SkipDeparted) is
	// dropped rather than kept in Snapshot.Departed.
	forget bool
	// memo is the memo to save once Apply settles the change (memo.go);
	// hadMemo says the entry had one, which did not match; recheckBy is
	// the next validity boundary of the entry's certificates.
	memo      *Memo
	hadMemo   bool
	recheckBy time.Time
}

// Writes reports whether applying the change writes to the sink.
func (c *Change) Writes() bool {
	return c.Action == ActionAdd || c.Action == ActionReplace || c.Action == ActionRemove || c.Action == ActionDepart
}

// Departed reports whether the change is about an entry that left the
// directory while something this Syncer published stayed on its
// recipient (SkipDeparted or ActionDepart).
func (c *Change) Departed() bool {
	return c.Action == ActionDepart || c.Action == ActionSkip && c.Reason == SkipDeparted
}

// Summary counts a plan's or a report's changes.
type Summary struct {
	Entries   int `json:"entries"`
	Add       int `json:"add"`
	Replace   int `json:"replace"`
	Remove    int `json:"remove"`
	Unchanged int `json:"unchanged"`
	Skip      int `json:"skip"`
	// Depart counts ActionDepart changes; Departed counts every change
	// about an entry that left the directory with something published
	// (ActionDepart, and ActionSkip with SkipDeparted: also in Skip).
	Depart   int `json:"depart"`
	Departed int `json:"departed"`
	// Losing counts recipients that would lose, or may lose, at least one
	// certificate they carry now: a write that takes a certificate away
	// (ActionDepart included),
	// and a write over a set the sink cannot read back and the state does
	// not know (Overwriting). The guard limits it.
	Losing int `json:"losing"`
	// Overwriting counts the writes over an unknown set (part of Losing).
	Overwriting int `json:"overwriting"`
	// Pruning counts entries whose values would be removed from the
	// directory by the write-back; the guard limits it too.
	Pruning int `json:"pruning"`
	// Retried counts entries planned again from the state because an
	// earlier pass skipped them (no recipient yet, a conflict, an error).
	Retried int `json:"retried"`
	// Memoized counts the entries taken on trust from their memo
	// (Change.Memoized, and the unlisted entries, see [Plan.Unlisted];
	// also in Unchanged or Skip). Their values count in
	// KeptValues, DroppedValues and Dropped as the memo remembers them.
	Memoized int `json:"memoized"`
	// KeptValues and DroppedValues count attribute values; Dropped
	// breaks the drops down by reason.
	KeptValues    int            `json:"kept_values"`
	DroppedValues int            `json:"dropped_values"`
	Dropped       map[Reason]int `json:"dropped,omitempty"`
	// Written, Failed and NotWritable are filled in by Apply. Failed
	// counts failed writes and failed lookups.
	Written     int `json:"written"`
	Failed      int `json:"failed"`
	NotWritable int `json:"not_writable"`
}

// Plan is what a Syncer intends to do. Make one with [Syncer.Plan], look at
// it, then hand it to [Syncer.Apply]. A plan can be saved with
// [Plan.WriteTo], reviewed, read back with [ReadPlan] and applied exactly,
// in another process, as long as the state has not moved since. Its rows
// ([Plan.Rows]) and the certificates its writes send wait in a temporary
// file, not in memory: a plan of a million entries holds a few megabytes
// of them (see rows.go). Apply removes the file, and [Plan.Close] does for
// a plan not applied.
type Plan struct {
	// Changes is the rows of a plan or report made by hand (for a
	// renderer, a test); nil in those a Syncer makes, whose rows wait in
	// the plan's temporary file. Read the rows of either with [Plan.Rows].
	//
	// A plan has one row per entry read, but for the entries found
	// unchanged on their [Memo], which are only counted (see
	// [Plan.Unlisted]), and one per entry that left the directory with
	// something published (SkipDeparted, ActionDepart), sorted by User,
	// then ID, then Source (a report keeps the plan's order).
	Changes []*Change `json:"changes"`
	// Summary counts the rows, and the unlisted entries.
	Summary Summary `json:"summary"`
	// Full is true when the source read every entry in scope.
	Full bool `json:"full"`
	// Started and Finished time the planning.
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// Force lets Apply go ahead even when the guard would stop it: the
	// override for one run.
	Force bool `json:"-"`

	cookie  []byte
	state   *Snapshot
	applied bool
	// origin is what the plan was made against; loaded is true for a
	// plan read by ReadPlan, whose state Apply loads and checks against
	// origin.
	origin *planOrigin
	loaded bool
	// spill holds the values of the plan's writes, outside the heap
	// (see spill.go).
	spill *spill
	// unlisted is what the plan keeps of the entries it only counts
	// (unlisted.go).
	unlisted *unlisted
	// rows is the rows of a plan a Syncer made, in the temporary file
	// (rows.go); nil for a plan made by hand (Changes).
	rows *rowSet
}

// Report is the outcome of [Syncer.Apply]: the plan's changes with their
// outcomes (read them with [Plan.Rows]), and counts. Its JSON has the
// counts and, under "changes", the rows in memory (Changes): a program
// that prints a Syncer's report as JSON sets them from CollectRows, as
// `smimesync sync --json` does. The rows of a report Apply made wait in
// a temporary file of its own; Close removes it once the report has been
// read (the garbage collector does for a report dropped without it).
type Report struct {
	Plan
	// DryRun is true when nothing was written.
	DryRun bool `json:"dry_run"`
	// Errors lists every error of the run, each naming its recipient.
	Errors []string `json:"errors,omitempty"`
	// CookieAdvanced is true when the source's delta cookie was saved:
	// every write and lookup succeeded. Entries skipped for want of a
	// recipient, or for a conflict, do not hold the cookie back: the state
	// keeps them and every later pass plans them again until they are
	// published or leave the directory.
	CookieAdvanced bool `json:"cookie_advanced"`
	// StateSaved is true when Apply saved the state (it does unless the
	// guard stopped it or the save itself failed).
	StateSaved bool `json:"state_saved"`

	// keep is the plan whose rows (and temporary file) a report that
	// wrote nothing shows.
	keep *Plan
	// forgotten are the keys of the entries Apply forgot (forgetUnseen):
	// rememberEntries drops their memos.
	forgotten []string
}

// Stage names the part of a pass a [Progress] report is about.
type Stage string

// The stages of a pass.
const (
	// StagePlan: Plan (or PlanFull) reading and judging entries.
	StagePlan Stage = "plan"
	// StageApply: Apply writing.
	StageApply Stage = "apply"
)

// Progress says how far a Plan or an Apply has come.
type Progress struct {
	// Stage is StagePlan or StageApply.
	Stage Stage
	// Done counts entries planned, or writes attempted.
	Done int
	// Total is the number of writes an Apply will attempt; 0 while
	// planning, as the source streams and its size is not known.
	Total int
}
