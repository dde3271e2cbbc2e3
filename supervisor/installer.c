/* SPDX-License-Identifier: MIT */
/*
 * installer.c: granary-installer, which verifies and unpacks one uploaded
 * package into STATE/packages. The launcher (or `granary app install` with
 * the daemon down) starts it through package_install() (install.c) as pid 1
 * of fresh pid, network, IPC and UTS namespaces, with three descriptors:
 *
 *	3  the .spk file (read only from here on)
 *	4  a pipe for the one fixed-size result (struct package_install_result)
 *	5  STATE/packages
 *
 * Before reading a byte of the package it chroots into packages/, closes
 * everything else, sets resource limits, drops every capability (uid 0 stays
 * the owner of packages/, so it can still write there, but cannot override
 * permissions, chown, mount or trace), sets NO_NEW_PRIVS and loads the
 * seccomp denylist with no sockets. It is a program of its own so that
 * libarchive and its dependencies never enter granaryd's address spaces.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cap-ng.h>

#include "common/macro.h"
#include "spk/spk.h"
#include "supervisor/supervisor-internal.h"
#include "common/banned.h"

#define INSTALL_CPU_SECONDS 600

static _noreturn_ _printf_(3, 4) void finish(struct package_install_result *res, int r,
					     const char *format, ...)
{
	va_list ap;
	ssize_t n;

	res->error = r;
	if (format) {
		va_start(ap, format);
		(void)vsnprintf(res->message, sizeof(res->message), format, ap);
		va_end(ap);
	}
	do
		n = write(INSTALLER_RESULT_FD, res, sizeof(*res));
	while (n < 0 && errno == EINTR);
	_exit(n == (ssize_t)sizeof(*res) ? 0 : 1);
}

static int
set_limit(int resource, rlim_t value)
{
	struct rlimit rl = { value, value };

	return setrlimit(resource, &rl) < 0 ? negative_errno() : 0;
}

int
main(int argc, char *argv[])
{
	_cleanup_(spk_package_freep) struct spk_package *p = NULL;
	struct package_install_result res = {};
	struct spk_error err = {};
	const struct spk_info *info;
	char dest[PACKAGE_ID_LEN + 2];
	int r;

	(void)argv;
	if (argc != 1 || getpid() != 1) {
		fprintf(stderr, "granary-installer is started by granaryd's launcher, not by hand; "
				"use 'spk verify' or 'spk unpack' to look at a package\n");
		return 2;
	}
	if (fchdir(INSTALLER_PACKAGES_FD) < 0 || chroot(".") < 0 || chdir("/") < 0)
		finish(&res, negative_errno(), "Failed to enter the packages directory: %m");
	if (close(INSTALLER_PACKAGES_FD) < 0 || close_range(INSTALLER_PACKAGES_FD + 1, ~0U, 0) < 0)
		finish(&res, negative_errno(), "Failed to close descriptors: %m");
	if ((r = set_limit(RLIMIT_FSIZE, SPK_DEFAULT_MAX_FILE_BYTES)) < 0 ||
	    (r = set_limit(RLIMIT_NOFILE, 64)) < 0 || (r = set_limit(RLIMIT_CORE, 0)) < 0 ||
	    (r = set_limit(RLIMIT_CPU, INSTALL_CPU_SECONDS)) < 0)
		finish(&res, r, "Failed to set resource limits");
	capng_clear(CAPNG_SELECT_BOTH);
	if (capng_apply(CAPNG_SELECT_BOTH) < 0)
		finish(&res, -EPERM, "Failed to drop capabilities");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		finish(&res, negative_errno(), "Failed to set no_new_privs: %m");
	r = lockdown_seccomp(LOCKDOWN_NO_SOCKETS);
	if (r < 0)
		finish(&res, r, "Failed to install the seccomp filter");

	r = spk_package_open_fd(INSTALLER_SPK_FD, NULL, NULL, NULL, &p, &err);
	if (r < 0)
		finish(&res, r, "%s", err.message);
	info = spk_package_info(p);
	(void)snprintf(res.package_id, sizeof(res.package_id), "%s", info->package_id);
	(void)snprintf(res.app_id, sizeof(res.app_id), "%s", info->app_id);
	(void)snprintf(dest, sizeof(dest), "/%s", info->package_id);
	r = spk_package_unpack(p, dest, SPK_UNPACK_SYNC, NULL, NULL, NULL, NULL, &err);
	if (r == -EEXIST) {
		/* Named by the hash of the file: an earlier install of these very bytes
		 * (whose database row a crash may have kept from being written). */
		res.existed = 1;
		r = 0;
	}
	if (r < 0)
		finish(&res, r, "%s", err.message);
	finish(&res, 0, NULL);
}
