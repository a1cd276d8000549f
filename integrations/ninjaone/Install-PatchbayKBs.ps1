<#
.SYNOPSIS
    Installs exactly the Windows updates whose KB numbers are given, and nothing else.

.DESCRIPTION
    patchbay runs this script through NinjaOne (POST /v2/device/{id}/script/run) with the run's KBs as the
    parameters, e.g. "KB5034763 KB5034439". NinjaOne's own "apply patches" installs whatever its policy approved;
    this script is how patchbay installs its decision instead.

    It searches Windows Update for software updates not yet installed, keeps those whose KB is in the list,
    downloads and installs them, and never reboots (patchbay reboots inside the client's window).

    Output, one line each, read by patchbay from the activity's message:
        PATCHBAY KB<number> INSTALLED
        PATCHBAY KB<number> ALREADY_INSTALLED
        PATCHBAY KB<number> NOT_OFFERED          (superseded or not applicable: patchbay's verify judges it)
        PATCHBAY KB<number> FAILED <0xHRESULT>
        PATCHBAY REBOOT_REQUIRED YES|NO
    Exit code 0 when nothing failed, 1 when any KB failed, 2 on a bad argument.
#>
param(
    [Parameter(ValueFromRemainingArguments = $true)]
    [string[]] $KBs
)

$ErrorActionPreference = 'Stop'

# NinjaOne passes the parameters as one string split on spaces; accept "KB5034763" and "5034763" alike.
$wanted = @($KBs | ForEach-Object { $_ -split '[\s,]+' } | Where-Object { $_ } | ForEach-Object {
    if ($_ -notmatch '^(?i:kb)?(\d{6,8})$') { Write-Output "PATCHBAY bad argument: $_"; exit 2 }
    "KB$($Matches[1])"
} | Select-Object -Unique)
if ($wanted.Count -eq 0) { Write-Output 'PATCHBAY bad argument: no KB given'; exit 2 }

$session = New-Object -ComObject Microsoft.Update.Session
$session.ClientApplicationID = 'patchbay'
$searcher = $session.CreateUpdateSearcher()

function Test-Installed([string] $kb) {
    $history = $searcher.Search("IsInstalled=1 and Type='Software'").Updates
    foreach ($u in $history) { foreach ($id in $u.KBArticleIDs) { if ("KB$id" -eq $kb) { return $true } } }
    return $false
}

$offered = $searcher.Search("IsInstalled=0 and Type='Software' and IsHidden=0").Updates
$failed = $false

foreach ($kb in $wanted) {
    $match = $null
    foreach ($u in $offered) { foreach ($id in $u.KBArticleIDs) { if ("KB$id" -eq $kb) { $match = $u } } }
    if ($null -eq $match) {
        if (Test-Installed $kb) { Write-Output "PATCHBAY $kb ALREADY_INSTALLED" } else { Write-Output "PATCHBAY $kb NOT_OFFERED" }
        continue
    }
    # One update per collection: a failure is then that KB's, with its own result code.
    $one = New-Object -ComObject Microsoft.Update.UpdateColl
    if (-not $match.EulaAccepted) { $match.AcceptEula() }
    [void] $one.Add($match)
    try {
        $downloader = $session.CreateUpdateDownloader()
        $downloader.Updates = $one
        [void] $downloader.Download()
        $installer = $session.CreateUpdateInstaller()
        $installer.Updates = $one
        $result = $installer.Install()
        # OperationResultCode: 2 succeeded, 3 succeeded with errors; anything else did not install.
        if ($result.ResultCode -eq 2 -or $result.ResultCode -eq 3) {
            Write-Output "PATCHBAY $kb INSTALLED"
        } else {
            $failed = $true
            Write-Output ("PATCHBAY $kb FAILED 0x{0:X8}" -f $result.GetUpdateResult(0).HResult)
        }
    } catch {
        $failed = $true
        Write-Output ("PATCHBAY $kb FAILED 0x{0:X8}" -f $_.Exception.HResult)
    }
}

$rebootRequired = (New-Object -ComObject Microsoft.Update.SystemInfo).RebootRequired
Write-Output ("PATCHBAY REBOOT_REQUIRED {0}" -f $(if ($rebootRequired) { 'YES' } else { 'NO' }))
if ($failed) { exit 1 }
exit 0
