package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// Parse decodes and validates a receivers and routes file held in data;
// name is what errors call the file. ${VAR} in string values expands
// through lookup (os.LookupEnv when nil). Defaults are filled in.
//
// On any problem it returns a nil File and a *ValidationError listing
// every problem with its line and field path.
func Parse(name string, data []byte, lookup Lookup) (*File, error) {
	return ParseWith(name, data, lookup, nil)
}

// Check finds problems of a parsed file that its own checks leave to
// others: building its routes, say (see ParseWith).
type Check func(*File) []Problem

// ParseWith is Parse with more checks: check gets the file as parsed, even
// when it has problems (a field that failed to decode is left zero), and
// returns problems at field paths, which are reported with the file's own,
// at their lines, all at once. A check's problem at a path that already has
// one, or below a field that failed to decode, is dropped.
func ParseWith(name string, data []byte, lookup Lookup, check Check) (*File, error) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	p := newProblems()
	f := parse(data, lookup, p)
	if f != nil {
		validateFile(f, p)
		f.src = &source{name: name, lines: p.lines, env: p.env}
		if check != nil {
			for _, pr := range check(f) {
				p.addLine(p.lineOf(pr.Path), pr.Path, pr.Msg+p.from(pr.Path))
			}
		}
	}
	if err := p.err(name); err != nil {
		return nil, err
	}
	return f, nil
}

// LoadFile reads the file at path and parses it with Parse.
func LoadFile(path string, lookup Lookup) (*File, error) {
	return LoadFileWith(path, lookup, nil)
}

// LoadFileWith reads the file at path and parses it with ParseWith.
func LoadFileWith(path string, lookup Lookup, check Check) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseWith(path, data, lookup, check)
}

// parse turns YAML into a File, recording problems; it returns nil when the
// YAML cannot be read at all.
func parse(data []byte, lookup Lookup, p *problems) (f *File) {
	tree, err := parseYAML(data)
	if err != nil {
		line := 0
		msg := err.Error()
		var ye interface {
			GetToken() *token.Token
			GetMessage() string
		}
		if errors.As(err, &ye) {
			msg = ye.GetMessage()
			if tk := ye.GetToken(); tk != nil && tk.Position != nil {
				line = tk.Position.Line
			}
		}
		p.addLine(line, "", "invalid YAML: "+msg)
		return nil
	}
	d := newDecoder(lookup, p)
	var body ast.Node
	for _, doc := range tree.Docs {
		if doc == nil || doc.Body == nil {
			continue
		}
		if body != nil {
			p.addLine(nodeLine(doc.Body), "", "only one YAML document is allowed")
			return nil
		}
		body = doc.Body
	}
	d.collectAnchors(body, 0)
	return d.file(body)
}

// parseYAML runs the YAML parser, turning a panic inside it (a parser bug
// on odd input) into an error.
func parseYAML(data []byte) (f *ast.File, err error) {
	defer func() {
		if r := recover(); r != nil {
			f, err = nil, errors.New("the YAML parser failed on this input")
		}
	}()
	return parser.ParseBytes(data, 0)
}

// Config is the whole configuration: the environment and the file it
// names.
type Config struct {
	Env  Env
	File *File
}

// Load reads the environment with LoadEnv, then the file it names
// (FANOUT_CONFIG) with LoadFile, expanding ${VAR} from the process
// environment. When the environment has problems but still names a file,
// the file is checked too and both errors are joined, so one run shows
// everything to fix.
func Load() (*Config, error) { return LoadWith(nil) }

// LoadWith is Load with more checks of the file (see ParseWith).
func LoadWith(check Check) (*Config, error) {
	env, envErr := LoadEnv()
	path := env.ConfigFile
	if envErr != nil {
		path = os.Getenv("FANOUT_CONFIG")
		if path == "" {
			path = DefaultEnv().ConfigFile
		}
	}
	f, fileErr := LoadFileWith(path, os.LookupEnv, check)
	var ve *ValidationError
	if fileErr != nil && !errors.As(fileErr, &ve) {
		fileErr = fileProblem(path, os.Getenv("FANOUT_CONFIG") == "", fileErr)
	}
	if err := errors.Join(envErr, fileErr); err != nil {
		return nil, err
	}
	return &Config{Env: env, File: f}, nil
}

// fileProblem turns a failure to read the receivers file into a problem of
// FANOUT_CONFIG that says where the file was looked for and how to get one.
func fileProblem(path string, isDefault bool, err error) error {
	where := path
	if isDefault {
		where += " (the default)"
	}
	msg := fmt.Sprintf("cannot read the receivers file %s: %v", where, pathErrCause(err))
	if errors.Is(err, fs.ErrNotExist) {
		msg = fmt.Sprintf("no receivers file at %s: set FANOUT_CONFIG to its path, or start from the commented example in the repository, fanout.example.yaml (cp fanout.example.yaml fanout.yaml)", where)
	}
	return &ValidationError{Problems: []Problem{{Path: "FANOUT_CONFIG", Msg: msg}}}
}

// pathErrCause drops the file name an *os.PathError repeats.
func pathErrCause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
