<#
.SYNOPSIS
  Install the rerank-kit server on Windows into a virtual environment, with an env file and a start script.
.EXAMPLE
  powershell -ExecutionPolicy Bypass -File scripts\install_server.ps1 -Model BAAI/bge-reranker-base -Port 8086
.NOTES
  Versions come from the lock (requirements\server-py311.lock), the set the test suite passed with.
  torch: the locked version, the CPU build unless -Gpu is given (then the CUDA 12.4 build); $env:TORCH_SPEC
  overrides it.
  Written for Windows PowerShell 5.1 and PowerShell 7; not run on this project's Linux CI.
#>
param(
    [string]$Prefix = "$env:LOCALAPPDATA\rerank-kit",
    [string]$Python = "",
    [string]$Model = "BAAI/bge-reranker-v2-m3",
    [int]$Port = 8086,
    [switch]$Gpu
)
$ErrorActionPreference = "Stop"
$Repo = Split-Path -Parent $PSScriptRoot

if (-not $Python) {
    foreach ($candidate in @("py -3.11", "py -3.12", "python")) {  # the lock is made on 3.11
        $exe, $arg = $candidate.Split(" ", 2)
        if (Get-Command $exe -ErrorAction SilentlyContinue) {
            & $exe $arg -c "import sys; sys.exit(sys.version_info < (3, 11))" 2>$null
            if ($LASTEXITCODE -eq 0) { $Python = $candidate; break }
        }
    }
}
if (-not $Python) { throw "rerank-kit needs Python >= 3.11: install it from python.org or pass -Python" }
$exe, $arg = $Python.Split(" ", 2)

Write-Host "==> virtual environment in $Prefix\venv"
New-Item -ItemType Directory -Force -Path $Prefix | Out-Null
& $exe $arg -m venv "$Prefix\venv"
$VenvPython = "$Prefix\venv\Scripts\python.exe"
function Pip { & $VenvPython -m pip install --disable-pip-version-check -q @args; if ($LASTEXITCODE) { throw "pip failed" } }

$Lock = "$Repo\requirements\server-py311.lock"
$TorchVersion = (Select-String -Path $Lock -Pattern '^torch==([^+\s]+)').Matches[0].Groups[1].Value
$Constraints = "$Prefix\constraints.txt"
Get-Content $Lock | Where-Object { $_ -notmatch '^torch==' } | Set-Content $Constraints
if ($env:TORCH_SPEC) { Pip $env:TORCH_SPEC }
elseif ($Gpu) { Pip "torch==$TorchVersion" --index-url https://download.pytorch.org/whl/cu124 }
else { Pip "torch==$TorchVersion" --index-url https://download.pytorch.org/whl/cpu }
Pip -c $Constraints "$Repo[server]"

$EnvFile = "$Prefix\server.env"
if (-not (Test-Path $EnvFile)) {
    (Get-Content "$Repo\conf\server.env.example") `
        -replace '^RERANK_MODEL=.*', "RERANK_MODEL=$Model" `
        -replace '^RERANK_PORT=.*', "RERANK_PORT=$Port" | Set-Content $EnvFile
    Write-Host "==> wrote $EnvFile"
}

$Launcher = "$Prefix\rerank-kit-server.ps1"
@"
Get-Content "$EnvFile" | Where-Object { `$_ -match '^\s*RERANK_\w+=' } | ForEach-Object {
    `$name, `$value = `$_.Split('=', 2); Set-Item -Path "env:`$name" -Value `$value
}
& "$Prefix\venv\Scripts\rerank-kit.exe" serve @args
"@ | Set-Content $Launcher

Write-Host ""
Write-Host "Installed. Start the server with:  powershell -ExecutionPolicy Bypass -File `"$Launcher`""
Write-Host "Settings live in $EnvFile. From Dify or RAGFlow in Docker Desktop use http://host.docker.internal:$Port"
