
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'bud' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'bud'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'bud' {
            [CompletionResult]::new('--addr', '--addr', [CompletionResultType]::ParameterName, 'Build on a BuildKit daemon instead of the embedded solver (docker://, unix://PATH, tcp://HOST:PORT, docker-container://NAME, kube-pod://POD)')
            [CompletionResult]::new('--tlscacert', '--tlscacert', [CompletionResultType]::ParameterName, 'With a tcp:// --addr: the CA certificate the daemon''s certificate is verified with')
            [CompletionResult]::new('--tlscert', '--tlscert', [CompletionResultType]::ParameterName, 'With a tcp:// --addr: the client certificate')
            [CompletionResult]::new('--tlskey', '--tlskey', [CompletionResultType]::ParameterName, 'With a tcp:// --addr: the client certificate''s key')
            [CompletionResult]::new('--tlsservername', '--tlsservername', [CompletionResultType]::ParameterName, 'With a tcp:// --addr: the name the daemon''s certificate must carry [default: the host]')
            [CompletionResult]::new('--tlsdir', '--tlsdir', [CompletionResultType]::ParameterName, 'With a tcp:// --addr: a directory with ca.pem, cert.pem and key.pem (or ca.crt, tls.crt and tls.key)')
            [CompletionResult]::new('--root', '--root', [CompletionResultType]::ParameterName, 'Directory of bud''s state: cache, snapshots, content store [default: /var/lib/bud for root, ~/.local/share/bud otherwise]')
            [CompletionResult]::new('-D', '-D ', [CompletionResultType]::ParameterName, 'Print debug logs (RUST_LOG gives finer control)')
            [CompletionResult]::new('--debug', '--debug', [CompletionResultType]::ParameterName, 'Print debug logs (RUST_LOG gives finer control)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('build', 'build', [CompletionResultType]::ParameterValue, 'Build an image from a Dockerfile (the default command)')
            [CompletionResult]::new('du', 'du', [CompletionResultType]::ParameterValue, 'Show the disk usage of the build cache')
            [CompletionResult]::new('prune', 'prune', [CompletionResultType]::ParameterValue, 'Remove build cache')
            [CompletionResult]::new('debug', 'debug', [CompletionResultType]::ParameterValue, 'Look inside a build: the LLB graph, the worker')
            [CompletionResult]::new('completion', 'completion', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'bud;build' {
            [CompletionResult]::new('--add-host', '--add-host', [CompletionResultType]::ParameterName, 'Add a custom host-to-IP mapping (host:ip)')
            [CompletionResult]::new('--allow', '--allow', [CompletionResultType]::ParameterName, 'Allow extra privileged entitlement (network.host, security.insecure, device[=NAME[,alias=ALIAS]])')
            [CompletionResult]::new('--annotation', '--annotation', [CompletionResultType]::ParameterName, 'Add an annotation to the image (KEY=VALUE, or TYPE[PLATFORM]:KEY=VALUE with TYPE manifest or manifest-descriptor)')
            [CompletionResult]::new('--attest', '--attest', [CompletionResultType]::ParameterName, 'Attestation parameters (type=provenance[,mode=min|max], type=sbom; disabled=true)')
            [CompletionResult]::new('--build-arg', '--build-arg', [CompletionResultType]::ParameterName, 'Set build-time variables (KEY=VALUE, or KEY to take it from the environment)')
            [CompletionResult]::new('--build-context', '--build-context', [CompletionResultType]::ParameterName, 'Additional build contexts (NAME=DIR|https://URL|docker-image://REF)')
            [CompletionResult]::new('--cache-from', '--cache-from', [CompletionResultType]::ParameterName, 'External cache sources (type=registry,ref=IMAGE, or IMAGE)')
            [CompletionResult]::new('--cache-to', '--cache-to', [CompletionResultType]::ParameterName, 'Cache export destinations (type=inline|registry|local,...)')
            [CompletionResult]::new('--call', '--call', [CompletionResultType]::ParameterName, 'Evaluate the build another way: check, outline, targets (METHOD[,format=json])')
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Name of the Dockerfile (default: PATH/Dockerfile; - reads it from stdin)')
            [CompletionResult]::new('--file', '--file', [CompletionResultType]::ParameterName, 'Name of the Dockerfile (default: PATH/Dockerfile; - reads it from stdin)')
            [CompletionResult]::new('--iidfile', '--iidfile', [CompletionResultType]::ParameterName, 'Write the image ID to the file')
            [CompletionResult]::new('--label', '--label', [CompletionResultType]::ParameterName, 'Set metadata for an image (KEY=VALUE)')
            [CompletionResult]::new('--metadata-file', '--metadata-file', [CompletionResultType]::ParameterName, 'Write build result metadata (image digest, config digest, names) to the file, as JSON')
            [CompletionResult]::new('--network', '--network', [CompletionResultType]::ParameterName, 'Networking mode for the RUN instructions (default, none, host)')
            [CompletionResult]::new('--no-cache-filter', '--no-cache-filter', [CompletionResultType]::ParameterName, 'Do not cache the named stages')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output destination (type=docker|image|registry|oci|tar|local,KEY=VALUE...; DIR for local; - for a tar on stdout)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output destination (type=docker|image|registry|oci|tar|local,KEY=VALUE...; DIR for local; - for a tar on stdout)')
            [CompletionResult]::new('--platform', '--platform', [CompletionResultType]::ParameterName, 'Set the target platform(s) of the build (os/arch[/variant])')
            [CompletionResult]::new('--provenance', '--provenance', [CompletionResultType]::ParameterName, 'Shorthand for --attest=type=provenance (true, false, or mode=min|max[,...])')
            [CompletionResult]::new('--progress', '--progress', [CompletionResultType]::ParameterName, 'Set the type of progress output (auto, tty, plain, rawjson, quiet)')
            [CompletionResult]::new('--sbom', '--sbom', [CompletionResultType]::ParameterName, 'Shorthand for --attest=type=sbom (true, false, or attributes)')
            [CompletionResult]::new('--secret', '--secret', [CompletionResultType]::ParameterName, 'Secret to expose to the build (id=ID[,src=PATH|env=VAR])')
            [CompletionResult]::new('--shm-size', '--shm-size', [CompletionResultType]::ParameterName, 'Size of /dev/shm for RUN steps (e.g. 64m)')
            [CompletionResult]::new('--ssh', '--ssh', [CompletionResultType]::ParameterName, 'SSH agent socket or keys to expose to the build (default|ID[=SOCKET|KEY,...])')
            [CompletionResult]::new('-t', '-t', [CompletionResultType]::ParameterName, 'Name and optionally a tag in the ''name:tag'' format')
            [CompletionResult]::new('--tag', '--tag', [CompletionResultType]::ParameterName, 'Name and optionally a tag in the ''name:tag'' format')
            [CompletionResult]::new('--target', '--target', [CompletionResultType]::ParameterName, 'Set the target build stage to build')
            [CompletionResult]::new('--trace', '--trace', [CompletionResultType]::ParameterName, 'Write a Chrome trace (JSON, for chrome://tracing or Perfetto) of the build''s steps')
            [CompletionResult]::new('--ulimit', '--ulimit', [CompletionResultType]::ParameterName, 'Ulimit options for RUN steps (NAME=SOFT[:HARD])')
            [CompletionResult]::new('--rm', '--rm', [CompletionResultType]::ParameterName, 'Remove intermediate containers after a successful build (always the case with bud)')
            [CompletionResult]::new('--addr', '--addr', [CompletionResultType]::ParameterName, 'Build on a BuildKit daemon instead of the embedded solver (docker://, unix://PATH, tcp://HOST:PORT, docker-container://NAME, kube-pod://POD)')
            [CompletionResult]::new('--tlscacert', '--tlscacert', [CompletionResultType]::ParameterName, 'With a tcp:// --addr: the CA certificate the daemon''s certificate is verified with')
            [CompletionResult]::new('--tlscert', '--tlscert', [CompletionResultType]::ParameterName, 'With a tcp:// --addr: the client certificate')
            [CompletionResult]::new('--tlskey', '--tlskey', [CompletionResultType]::ParameterName, 'With a tcp:// --addr: the client certificate''s key')
            [CompletionResult]::new('--tlsservername', '--tlsservername', [CompletionResultType]::ParameterName, 'With a tcp:// --addr: the name the daemon''s certificate must carry [default: the host]')
            [CompletionResult]::new('--tlsdir', '--tlsdir', [CompletionResultType]::ParameterName, 'With a tcp:// --addr: a directory with ca.pem, cert.pem and key.pem (or ca.crt, tls.crt and tls.key)')
            [CompletionResult]::new('--root', '--root', [CompletionResultType]::ParameterName, 'Directory of bud''s state: cache, snapshots, content store [default: /var/lib/bud for root, ~/.local/share/bud otherwise]')
            [CompletionResult]::new('--check', '--check', [CompletionResultType]::ParameterName, 'Run the build checks only (shorthand for --call=check)')
            [CompletionResult]::new('--explain', '--explain', [CompletionResultType]::ParameterName, 'After the build, list the steps that ran and why each was not cached (bud''s own solver only: BuildKit, with --addr, does not report it)')
            [CompletionResult]::new('--load', '--load', [CompletionResultType]::ParameterName, 'Load the result into Docker (shorthand for --output=type=docker)')
            [CompletionResult]::new('--no-cache', '--no-cache', [CompletionResultType]::ParameterName, 'Do not use cache when building the image')
            [CompletionResult]::new('--pull', '--pull', [CompletionResultType]::ParameterName, 'Always attempt to pull all referenced images')
            [CompletionResult]::new('--push', '--push', [CompletionResultType]::ParameterName, 'Push the result to a registry (shorthand for --output=type=registry)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Suppress the build output and print the image ID on success')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Suppress the build output and print the image ID on success')
            [CompletionResult]::new('--force-rm', '--force-rm', [CompletionResultType]::ParameterName, 'Always remove intermediate containers (always the case with bud)')
            [CompletionResult]::new('-D', '-D ', [CompletionResultType]::ParameterName, 'Print debug logs (RUST_LOG gives finer control)')
            [CompletionResult]::new('--debug', '--debug', [CompletionResultType]::ParameterName, 'Print debug logs (RUST_LOG gives finer control)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'bud;du' {
            [CompletionResult]::new('--filter', '--filter', [CompletionResultType]::ParameterName, 'Filter records (type=..., until=DURATION, description~=TEXT)')
            [CompletionResult]::new('--addr', '--addr', [CompletionResultType]::ParameterName, 'Build on a BuildKit daemon instead of the embedded solver (docker://, unix://PATH, tcp://HOST:PORT, docker-container://NAME, kube-pod://POD)')
            [CompletionResult]::new('--tlscacert', '--tlscacert', [CompletionResultType]::ParameterName, 'With a tcp:// --addr: the CA certificate the daemon''s certificate is verified with')
            [CompletionResult]::new('--tlscert', '--tlscert', [CompletionResultType]::ParameterName, 'With a tcp:// --addr: the client certificate')
            [CompletionResult]::new('--tlskey', '--tlskey', [CompletionResultType]::ParameterName, 'With a tcp:// --addr: the client certificate''s key')
            [CompletionResult]::new('--tlsservername', '--tlsservername', [CompletionResultType]::ParameterName, 'With a tcp:// --addr: the name the daemon''s certificate must carry [default: the host]')
            [CompletionResult]::new('--tlsdir', '--tlsdir', [CompletionResultType]::ParameterName, 'With a tcp:// --addr: a directory with ca.pem, cert.pem and key.pem (or ca.crt, tls.crt and tls.key)')
            [CompletionResult]::new('--root', '--root', [CompletionResultType]::ParameterName, 'Directory of bud''s state: cache, snapshots, content store [default: /var/lib/bud for root, ~/.local/share/bud otherwise]')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Show every cache record')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Show every cache record')
            [CompletionResult]::new('-D', '-D ', [CompletionResultType]::ParameterName, 'Print debug logs (RUST_LOG gives finer control)')
            [CompletionResult]::new('--debug', '--debug', [CompletionResultType]::ParameterName, 'Print debug logs (RUST_LOG gives finer control)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'bud;prune' {
            [CompletionResult]::new('--keep-storage', '--keep-storage', [CompletionResultType]::ParameterName, 'Keep this much storage (e.g. 10GB)')
            [CompletionResult]::new('--filter', '--filter', [CompletionResultType]::ParameterName, 'Filter what is pruned (until=DURATION, type=...)')
            [CompletionResult]::new('--addr', '--addr', [CompletionResultType]::ParameterName, 'Build on a BuildKit daemon instead of the embedded solver (docker://, unix://PATH, tcp://HOST:PORT, docker-container://NAME, kube-pod://POD)')
            [CompletionResult]::new('--tlscacert', '--tlscacert', [CompletionResultType]::ParameterName, 'With a tcp:// --addr: the CA certificate the daemon''s certificate is verified with')
            [CompletionResult]::new('--tlscert', '--tlscert', [CompletionResultType]::ParameterName, 'With a tcp:// --addr: the client certificate')
            [CompletionResult]::new('--tlskey', '--tlskey', [CompletionResultType]::ParameterName, 'With a tcp:// --addr: the client certificate''s key')
            [CompletionResult]::new('--tlsservername', '--tlsservername', [CompletionResultType]::ParameterName, 'With a tcp:// --addr: the name the daemon''s certificate must carry [default: the host]')
            [CompletionResult]::new('--tlsdir', '--tlsdir', [CompletionResultType]::ParameterName, 'With a tcp:// --addr: a directory with ca.pem, cert.pem and key.pem (or ca.crt, tls.crt and tls.key)')
            [CompletionResult]::new('--root', '--root', [CompletionResultType]::ParameterName, 'Directory of bud''s state: cache, snapshots, content store [default: /var/lib/bud for root, ~/.local/share/bud otherwise]')
            [CompletionResult]::new('-a', '-a', [CompletionResultType]::ParameterName, 'Remove all unused build cache, not just dangling entries')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Remove all unused build cache, not just dangling entries')
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Do not prompt for confirmation')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'Do not prompt for confirmation')
            [CompletionResult]::new('-D', '-D ', [CompletionResultType]::ParameterName, 'Print debug logs (RUST_LOG gives finer control)')
            [CompletionResult]::new('--debug', '--debug', [CompletionResultType]::ParameterName, 'Print debug logs (RUST_LOG gives finer control)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'bud;debug' {
            [CompletionResult]::new('--addr', '--addr', [CompletionResultType]::ParameterName, 'Build on a BuildKit daemon instead of the embedded solver (docker://, unix://PATH, tcp://HOST:PORT, docker-container://NAME, kube-pod://POD)')
            [CompletionResult]::new('--tlscacert', '--tlscacert', [CompletionResultType]::ParameterName, 'With a tcp:// --addr: the CA certificate the daemon''s certificate is verified with')
            [CompletionResult]::new('--tlscert', '--tlscert', [CompletionResultType]::ParameterName, 'With a tcp:// --addr: the client certificate')
            [CompletionResult]::new('--tlskey', '--tlskey', [CompletionResultType]::ParameterName, 'With a tcp:// --addr: the client certificate''s key')
            [CompletionResult]::new('--tlsservername', '--tlsservername', [CompletionResultType]::ParameterName, 'With a tcp:// --addr: the name the daemon''s certificate must carry [default: the host]')
            [CompletionResult]::new('--tlsdir', '--tlsdir', [CompletionResultType]::ParameterName, 'With a tcp:// --addr: a directory with ca.pem, cert.pem and key.pem (or ca.crt, tls.crt and tls.key)')
            [CompletionResult]::new('--root', '--root', [CompletionResultType]::ParameterName, 'Directory of bud''s state: cache, snapshots, content store [default: /var/lib/bud for root, ~/.local/share/bud otherwise]')
            [CompletionResult]::new('-D', '-D ', [CompletionResultType]::ParameterName, 'Print debug logs (RUST_LOG gives finer control)')
            [CompletionResult]::new('--debug', '--debug', [CompletionResultType]::ParameterName, 'Print debug logs (RUST_LOG gives finer control)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('dump-llb', 'dump-llb', [CompletionResultType]::ParameterValue, 'Print the LLB graph a Dockerfile converts to')
            [CompletionResult]::new('workers', 'workers', [CompletionResultType]::ParameterValue, 'Show the worker: platforms, runtime, snapshotter, state root, GC policy')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'bud;debug;dump-llb' {
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Name of the Dockerfile (default: PATH/Dockerfile; - reads stdin)')
            [CompletionResult]::new('--file', '--file', [CompletionResultType]::ParameterName, 'Name of the Dockerfile (default: PATH/Dockerfile; - reads stdin)')
            [CompletionResult]::new('--target', '--target', [CompletionResultType]::ParameterName, 'Set the target build stage')
            [CompletionResult]::new('--build-arg', '--build-arg', [CompletionResultType]::ParameterName, 'Set build-time variables')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--addr', '--addr', [CompletionResultType]::ParameterName, 'Build on a BuildKit daemon instead of the embedded solver (docker://, unix://PATH, tcp://HOST:PORT, docker-container://NAME, kube-pod://POD)')
            [CompletionResult]::new('--tlscacert', '--tlscacert', [CompletionResultType]::ParameterName, 'With a tcp:// --addr: the CA certificate the daemon''s certificate is verified with')
            [CompletionResult]::new('--tlscert', '--tlscert', [CompletionResultType]::ParameterName, 'With a tcp:// --addr: the client certificate')
            [CompletionResult]::new('--tlskey', '--tlskey', [CompletionResultType]::ParameterName, 'With a tcp:// --addr: the client certificate''s key')
            [CompletionResult]::new('--tlsservername', '--tlsservername', [CompletionResultType]::ParameterName, 'With a tcp:// --addr: the name the daemon''s certificate must carry [default: the host]')
            [CompletionResult]::new('--tlsdir', '--tlsdir', [CompletionResultType]::ParameterName, 'With a tcp:// --addr: a directory with ca.pem, cert.pem and key.pem (or ca.crt, tls.crt and tls.key)')
            [CompletionResult]::new('--root', '--root', [CompletionResultType]::ParameterName, 'Directory of bud''s state: cache, snapshots, content store [default: /var/lib/bud for root, ~/.local/share/bud otherwise]')
            [CompletionResult]::new('--dot', '--dot', [CompletionResultType]::ParameterName, 'Print a Graphviz graph (same as --format=dot)')
            [CompletionResult]::new('-D', '-D ', [CompletionResultType]::ParameterName, 'Print debug logs (RUST_LOG gives finer control)')
            [CompletionResult]::new('--debug', '--debug', [CompletionResultType]::ParameterName, 'Print debug logs (RUST_LOG gives finer control)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'bud;debug;workers' {
            [CompletionResult]::new('--addr', '--addr', [CompletionResultType]::ParameterName, 'Build on a BuildKit daemon instead of the embedded solver (docker://, unix://PATH, tcp://HOST:PORT, docker-container://NAME, kube-pod://POD)')
            [CompletionResult]::new('--tlscacert', '--tlscacert', [CompletionResultType]::ParameterName, 'With a tcp:// --addr: the CA certificate the daemon''s certificate is verified with')
            [CompletionResult]::new('--tlscert', '--tlscert', [CompletionResultType]::ParameterName, 'With a tcp:// --addr: the client certificate')
            [CompletionResult]::new('--tlskey', '--tlskey', [CompletionResultType]::ParameterName, 'With a tcp:// --addr: the client certificate''s key')
            [CompletionResult]::new('--tlsservername', '--tlsservername', [CompletionResultType]::ParameterName, 'With a tcp:// --addr: the name the daemon''s certificate must carry [default: the host]')
            [CompletionResult]::new('--tlsdir', '--tlsdir', [CompletionResultType]::ParameterName, 'With a tcp:// --addr: a directory with ca.pem, cert.pem and key.pem (or ca.crt, tls.crt and tls.key)')
            [CompletionResult]::new('--root', '--root', [CompletionResultType]::ParameterName, 'Directory of bud''s state: cache, snapshots, content store [default: /var/lib/bud for root, ~/.local/share/bud otherwise]')
            [CompletionResult]::new('-D', '-D ', [CompletionResultType]::ParameterName, 'Print debug logs (RUST_LOG gives finer control)')
            [CompletionResult]::new('--debug', '--debug', [CompletionResultType]::ParameterName, 'Print debug logs (RUST_LOG gives finer control)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'bud;debug;help' {
            [CompletionResult]::new('dump-llb', 'dump-llb', [CompletionResultType]::ParameterValue, 'Print the LLB graph a Dockerfile converts to')
            [CompletionResult]::new('workers', 'workers', [CompletionResultType]::ParameterValue, 'Show the worker: platforms, runtime, snapshotter, state root, GC policy')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'bud;debug;help;dump-llb' {
            break
        }
        'bud;debug;help;workers' {
            break
        }
        'bud;debug;help;help' {
            break
        }
        'bud;completion' {
            [CompletionResult]::new('--addr', '--addr', [CompletionResultType]::ParameterName, 'Build on a BuildKit daemon instead of the embedded solver (docker://, unix://PATH, tcp://HOST:PORT, docker-container://NAME, kube-pod://POD)')
            [CompletionResult]::new('--tlscacert', '--tlscacert', [CompletionResultType]::ParameterName, 'With a tcp:// --addr: the CA certificate the daemon''s certificate is verified with')
            [CompletionResult]::new('--tlscert', '--tlscert', [CompletionResultType]::ParameterName, 'With a tcp:// --addr: the client certificate')
            [CompletionResult]::new('--tlskey', '--tlskey', [CompletionResultType]::ParameterName, 'With a tcp:// --addr: the client certificate''s key')
            [CompletionResult]::new('--tlsservername', '--tlsservername', [CompletionResultType]::ParameterName, 'With a tcp:// --addr: the name the daemon''s certificate must carry [default: the host]')
            [CompletionResult]::new('--tlsdir', '--tlsdir', [CompletionResultType]::ParameterName, 'With a tcp:// --addr: a directory with ca.pem, cert.pem and key.pem (or ca.crt, tls.crt and tls.key)')
            [CompletionResult]::new('--root', '--root', [CompletionResultType]::ParameterName, 'Directory of bud''s state: cache, snapshots, content store [default: /var/lib/bud for root, ~/.local/share/bud otherwise]')
            [CompletionResult]::new('-D', '-D ', [CompletionResultType]::ParameterName, 'Print debug logs (RUST_LOG gives finer control)')
            [CompletionResult]::new('--debug', '--debug', [CompletionResultType]::ParameterName, 'Print debug logs (RUST_LOG gives finer control)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'bud;help' {
            [CompletionResult]::new('build', 'build', [CompletionResultType]::ParameterValue, 'Build an image from a Dockerfile (the default command)')
            [CompletionResult]::new('du', 'du', [CompletionResultType]::ParameterValue, 'Show the disk usage of the build cache')
            [CompletionResult]::new('prune', 'prune', [CompletionResultType]::ParameterValue, 'Remove build cache')
            [CompletionResult]::new('debug', 'debug', [CompletionResultType]::ParameterValue, 'Look inside a build: the LLB graph, the worker')
            [CompletionResult]::new('completion', 'completion', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'bud;help;build' {
            break
        }
        'bud;help;du' {
            break
        }
        'bud;help;prune' {
            break
        }
        'bud;help;debug' {
            [CompletionResult]::new('dump-llb', 'dump-llb', [CompletionResultType]::ParameterValue, 'Print the LLB graph a Dockerfile converts to')
            [CompletionResult]::new('workers', 'workers', [CompletionResultType]::ParameterValue, 'Show the worker: platforms, runtime, snapshotter, state root, GC policy')
            break
        }
        'bud;help;debug;dump-llb' {
            break
        }
        'bud;help;debug;workers' {
            break
        }
        'bud;help;completion' {
            break
        }
        'bud;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
