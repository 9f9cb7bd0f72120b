// Command argocd-health-eval runs the cases of an Argo CD health_test.yaml
// through Argo CD's own Lua evaluator (github.com/argoproj/argo-cd/v3/util/lua),
// configured the way Argo CD configures a health check that comes from
// argocd-cm (resource.customizations.health.<group>_<kind>): the script is a
// resource override, and UseOpenLibs is false unless argocd-cm sets
// resource.customizations.useOpenLibs.<group>_<kind>, so the Lua `string`,
// `math` and `io` libraries are not opened (only package, base, table and
// Argo CD's safe os).
//
// Usage: argocd-health-eval -dir <group>/<Kind> [-cm argocd-cm.yaml]
//
// With -cm, the script is taken from the ConfigMap and must be byte-identical
// to <dir>/health.lua. Exit status is non-zero on any mismatch or error.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	appv1 "github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
	"github.com/argoproj/argo-cd/v3/util/lua"
)

type testCase struct {
	HealthStatus struct {
		Status  string `json:"status"`
		Message string `json:"message"`
	} `json:"healthStatus"`
	InputPath string `json:"inputPath"`
}

type testFile struct {
	Tests []testCase `json:"tests"`
}

type configMap struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Data map[string]string `json:"data"`
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "argocd-health-eval: "+format+"\n", args...)
	os.Exit(2)
}

func main() {
	dir := flag.String("dir", "", "directory in resource_customizations layout: <group>/<Kind> holding health.lua, health_test.yaml, testdata/")
	cmPath := flag.String("cm", "", "optional argocd-cm snippet; its health key must equal <dir>/health.lua")
	flag.Parse()
	if *dir == "" {
		fail("-dir is required")
	}
	kind := filepath.Base(*dir)
	group := filepath.Base(filepath.Dir(*dir))

	scriptBytes, err := os.ReadFile(filepath.Join(*dir, "health.lua"))
	if err != nil {
		fail("%v", err)
	}
	script := string(scriptBytes)
	useOpenLibs := false // Argo CD's default for checks from argocd-cm

	if *cmPath != "" {
		raw, err := os.ReadFile(*cmPath)
		if err != nil {
			fail("%v", err)
		}
		var cm configMap
		if err := yaml.Unmarshal(raw, &cm); err != nil {
			fail("%s: %v", *cmPath, err)
		}
		if cm.Kind != "ConfigMap" || cm.Metadata.Name != "argocd-cm" {
			fail("%s: want ConfigMap argocd-cm, got %s %s", *cmPath, cm.Kind, cm.Metadata.Name)
		}
		suffix := group + "_" + kind
		key := "resource.customizations.health." + suffix
		fromCM, ok := cm.Data[key]
		if !ok {
			fail("%s: no data key %s", *cmPath, key)
		}
		if fromCM != script {
			fail("%s: %s differs from %s", *cmPath, key, filepath.Join(*dir, "health.lua"))
		}
		if v, ok := cm.Data["resource.customizations.useOpenLibs."+suffix]; ok {
			useOpenLibs = strings.TrimSpace(v) == "true"
		}
		fmt.Printf("argocd-cm: %s matches health.lua (useOpenLibs=%v)\n", key, useOpenLibs)
	}

	// The same lookup Argo CD does: overrides keyed by "<group>/<Kind>".
	overrides := lua.ResourceHealthOverrides{
		group + "/" + kind: appv1.ResourceOverride{HealthLua: script, UseOpenLibs: useOpenLibs},
	}

	// Show that the restriction is real: in this mode `string` and `math` are nil.
	probe := lua.ResourceHealthOverrides{
		"probe.invalid/Probe": appv1.ResourceOverride{
			HealthLua:   `if string == nil and math == nil then return {status="Healthy", message="string and math are nil"} end return {status="Degraded", message="string or math is available"}`,
			UseOpenLibs: useOpenLibs,
		},
	}
	pobj := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "probe.invalid/v1", "kind": "Probe"}}
	if ph, err := probe.GetResourceHealth(pobj); err != nil || ph == nil {
		fail("probe: %v", err)
	} else {
		fmt.Printf("libraries: %s (%s)\n", ph.Message, ph.Status)
	}

	raw, err := os.ReadFile(filepath.Join(*dir, "health_test.yaml"))
	if err != nil {
		fail("%v", err)
	}
	var tf testFile
	if err := yaml.Unmarshal(raw, &tf); err != nil {
		fail("health_test.yaml: %v", err)
	}
	if len(tf.Tests) == 0 {
		fail("health_test.yaml has no tests")
	}

	passed, failed := 0, 0
	for _, tc := range tf.Tests {
		input, err := os.ReadFile(filepath.Join(*dir, tc.InputPath))
		if err != nil {
			fmt.Printf("FAIL %s: %v\n", tc.InputPath, err)
			failed++
			continue
		}
		obj := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(input, &obj.Object); err != nil {
			fmt.Printf("FAIL %s: %v\n", tc.InputPath, err)
			failed++
			continue
		}
		if obj.GroupVersionKind().Group != group || obj.GetKind() != kind {
			fmt.Printf("FAIL %s: object is %s, not %s/%s\n", tc.InputPath, obj.GroupVersionKind(), group, kind)
			failed++
			continue
		}
		got, err := overrides.GetResourceHealth(obj)
		switch {
		case err != nil:
			fmt.Printf("FAIL %s: Lua error: %v\n", tc.InputPath, err)
			failed++
		case got == nil:
			fmt.Printf("FAIL %s: script returned no health\n", tc.InputPath)
			failed++
		case string(got.Status) != tc.HealthStatus.Status || got.Message != tc.HealthStatus.Message:
			fmt.Printf("FAIL %s:\n  want %s %q\n  got  %s %q\n", tc.InputPath, tc.HealthStatus.Status, tc.HealthStatus.Message, got.Status, got.Message)
			failed++
		default:
			fmt.Printf("ok   %s: %s %q\n", tc.InputPath, got.Status, got.Message)
			passed++
		}
	}
	fmt.Printf("%d passed, %d failed\n", passed, failed)
	if failed > 0 {
		os.Exit(1)
	}
}
