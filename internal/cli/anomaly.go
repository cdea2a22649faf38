package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/qbroker/qbroker/internal/anomaly"
)

// anomalyCmd is `qbroker anomaly`: offline tools for the anomaly rules.
func anomalyCmd(env Env) *cobra.Command {
	cmd := &cobra.Command{Use: "anomaly", Short: "Anomaly rules: replay them over a past audit trail"}
	cmd.AddCommand(anomalyReplayCmd(env))
	return cmd
}

func anomalyReplayCmd(env Env) *cobra.Command {
	var configFile string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "replay [--config rules.yaml] FILE...",
		Short: "Run the anomaly rules over audit files and print what they find",
		Long: "Run the anomaly rules over audit log files, oldest first (rotated audit-<first>-<last>.log\n" +
			"files, then audit.log), as one stream, and print the findings. Without --config the\n" +
			"default rules apply. Exit 0 whatever is found; non-zero only if a file or the config\n" +
			"cannot be read or parsed.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var cfg anomaly.Config
			if configFile != "" {
				data, err := os.ReadFile(configFile)
				if err != nil {
					return fmt.Errorf("--config: %w", err)
				}
				if cfg, err = anomaly.ParseConfig(data); err != nil {
					return fmt.Errorf("--config %s: %w", configFile, err)
				}
			}
			eng, err := anomaly.New(cfg)
			if err != nil {
				return err
			}
			var all []anomaly.Finding
			for _, name := range args {
				if err := cmd.Context().Err(); err != nil {
					return err
				}
				fs, err := replayFile(eng, name)
				all = append(all, fs...)
				if err != nil {
					return err
				}
			}
			if asJSON {
				return anomaly.WriteJSON(env.Stdout, all)
			}
			if err := anomaly.WriteTable(env.Stdout, all); err != nil {
				return err
			}
			fmt.Fprintf(env.Stderr, "%d finding(s) in %d file(s)\n", len(all), len(args))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&configFile, "config", "", "YAML file with the anomaly rules (time_zone, schedule, rules: …); defaults if absent")
	f.BoolVar(&asJSON, "json", false, "print the findings as a JSON array")
	return cmd
}

func replayFile(eng *anomaly.Engine, name string) ([]anomaly.Finding, error) {
	fh, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	fs, err := eng.Replay(fh)
	if err != nil {
		return fs, fmt.Errorf("%s: %w", name, err)
	}
	return fs, nil
}
