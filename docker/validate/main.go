// Command validate checks docker/compose.yaml with the Compose Specification's own loader
// (compose-go, the library `docker compose` is built on), for machines without a Docker engine.
//
//	go run . ../compose.yaml [file.yaml ...]
//
// It loads the compose file as `docker compose config` does (schema validation, interpolation
// with no environment set, normalization, consistency checks), then checks what the loader does
// not: the services docker/README.md describes exist, build contexts, Dockerfiles and bind-mount
// sources exist, and every `depends_on: condition: service_healthy` names a service with a
// healthcheck. On success it prints one JSON object on stdout, for the Python test to check in
// detail: {"project": the normalized model, "yaml": {file: its parsed contents}} (the other YAML
// files named, e.g. Prometheus' and Grafana's, parsed with the loader's YAML library). Any error
// goes to stderr with exit status 1.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v4"
)

// The services docker/README.md describes.
var wantServices = []string{"fdb", "fdb-init", "kfdb-0", "kfdb-1", "kfdb-2", "prometheus", "grafana"}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: validate COMPOSE_FILE [YAML_FILE...]")
		os.Exit(2)
	}
	out, err := run(os.Args[1], os.Args[2:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "validate:", err)
		os.Exit(1)
	}
	os.Stdout.Write(out)
	os.Stdout.WriteString("\n")
}

func run(composeFile string, yamlFiles []string) ([]byte, error) {
	abs, err := filepath.Abs(composeFile)
	if err != nil {
		return nil, err
	}
	// No OS environment: the result must not depend on who runs the check; ${VAR:-default}
	// takes its default.
	options, err := cli.NewProjectOptions(
		[]string{abs},
		cli.WithWorkingDirectory(filepath.Dir(abs)),
		cli.WithEnv(nil),
		cli.WithResolvedPaths(true),
		cli.WithConsistency(true),
		cli.WithNormalization(true),
		cli.WithInterpolation(true),
	)
	if err != nil {
		return nil, err
	}
	project, err := options.LoadProject(context.Background())
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", abs, err)
	}
	if err := check(project); err != nil {
		return nil, err
	}
	model, err := project.MarshalJSON()
	if err != nil {
		return nil, err
	}
	parsed := map[string]any{}
	for _, f := range yamlFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var doc any
		if err := yaml.Unmarshal(data, &doc); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		parsed[f] = doc
	}
	return json.Marshal(map[string]any{"project": json.RawMessage(model), "yaml": parsed})
}

func check(project *types.Project) error {
	var problems []error
	for _, name := range wantServices {
		if _, ok := project.Services[name]; !ok {
			problems = append(problems, fmt.Errorf("service %s is missing", name))
		}
	}
	names := make([]string, 0, len(project.Services))
	for name := range project.Services {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		s := project.Services[name]
		if s.Build != nil {
			ctx := s.Build.Context
			if st, err := os.Stat(ctx); err != nil || !st.IsDir() {
				problems = append(problems, fmt.Errorf("service %s: build context %s is not a directory", name, ctx))
			}
			dockerfile := s.Build.Dockerfile
			if !filepath.IsAbs(dockerfile) {
				dockerfile = filepath.Join(ctx, dockerfile)
			}
			if _, err := os.Stat(dockerfile); err != nil {
				problems = append(problems, fmt.Errorf("service %s: Dockerfile %s: %w", name, dockerfile, err))
			}
		}
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind {
				if _, err := os.Stat(v.Source); err != nil {
					problems = append(problems, fmt.Errorf("service %s: bind-mount source %s: %w", name, v.Source, err))
				}
			}
		}
		for dep, cfg := range s.DependsOn {
			if cfg.Condition != types.ServiceConditionHealthy {
				continue
			}
			d, ok := project.Services[dep]
			if !ok || d.HealthCheck == nil || d.HealthCheck.Disable || len(d.HealthCheck.Test) == 0 {
				problems = append(problems, fmt.Errorf("service %s waits for %s to be healthy, which has no healthcheck", name, dep))
			}
		}
	}
	return errors.Join(problems...)
}
