# Installation and the Debian package (included by the top-level CMakeLists.txt).
#
# `cmake --install BUILD [--prefix DIR]` lays out an FHS tree:
#   bin/crmgate
#   etc/crmgate/crmgate.yaml, etc/crmgate/rules/*.json       (/etc/crmgate when the prefix is /usr)
#   etc/logrotate.d/crmgate                                  (/etc/logrotate.d when the prefix is /usr)
#   lib/systemd/system/crmgate.service                       (systemd's own unit directory when the prefix is /usr)
#   share/man/man8/crmgate.8.gz, share/doc/crmgate/README.md
# The package is `cpack -G DEB` in a build configured with -DCMAKE_INSTALL_PREFIX=/usr (deploy/build-deb.sh).
#
# Destinations stay relative to the prefix wherever the FHS allows, so that `--prefix DIR` puts
# everything under DIR; only a /usr prefix uses the absolute /etc and unit directory, as GNUInstallDirs
# does for CMAKE_INSTALL_FULL_SYSCONFDIR.
include(GNUInstallDirs)

if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
    set(CRMGATE_INSTALL_ETC "/etc")
else()
    set(CRMGATE_INSTALL_ETC "${CMAKE_INSTALL_SYSCONFDIR}")
endif()
if(NOT DEFINED CRMGATE_SYSTEMD_UNIT_DIR)
    if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
        # Debian 12 says /lib/systemd/system (systemd.pc); a machine without systemd.pc gets the same
        pkg_get_variable(CRMGATE_SYSTEMD_UNIT_DIR systemd systemdsystemunitdir)
        if(NOT CRMGATE_SYSTEMD_UNIT_DIR)
            set(CRMGATE_SYSTEMD_UNIT_DIR "/lib/systemd/system")
        endif()
    else()
        set(CRMGATE_SYSTEMD_UNIT_DIR "lib/systemd/system") # systemd also reads /usr/local/lib/systemd/system
    endif()
endif()

# The absolute paths the unit names, as installed with the configured prefix.
if(IS_ABSOLUTE "${CRMGATE_INSTALL_ETC}")
    set(CRMGATE_CONFIG_FILE "${CRMGATE_INSTALL_ETC}/crmgate/crmgate.yaml")
else()
    set(CRMGATE_CONFIG_FILE "${CMAKE_INSTALL_PREFIX}/${CRMGATE_INSTALL_ETC}/crmgate/crmgate.yaml")
endif()

# The unit: deploy/crmgate.service (Type=notify) with the installed paths, and Type=simple in a build
# without libsystemd, where the gateway cannot send READY=1 and systemd would wait for it in vain.
file(READ ${CMAKE_SOURCE_DIR}/deploy/crmgate.service CRMGATE_UNIT_TEXT)
string(REPLACE "ExecStart=/usr/bin/crmgate -c /etc/crmgate/crmgate.yaml"
       "ExecStart=${CMAKE_INSTALL_FULL_BINDIR}/crmgate -c ${CRMGATE_CONFIG_FILE}" CRMGATE_UNIT_TEXT "${CRMGATE_UNIT_TEXT}")
if(NOT CRMGATE_HAVE_SYSTEMD)
    string(REPLACE "\nType=notify\n" "\nType=simple\n" CRMGATE_UNIT_TEXT "${CRMGATE_UNIT_TEXT}")
endif()
file(CONFIGURE OUTPUT ${CMAKE_BINARY_DIR}/deploy/crmgate.service CONTENT "${CRMGATE_UNIT_TEXT}" @ONLY)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS deploy/crmgate.service)

# The man page, compressed as Debian policy asks (-n: no name or time stamp, so the package is reproducible)
add_custom_command(OUTPUT ${CMAKE_BINARY_DIR}/deploy/crmgate.8.gz
                   COMMAND gzip -9n -c ${CMAKE_SOURCE_DIR}/deploy/crmgate.8 > ${CMAKE_BINARY_DIR}/deploy/crmgate.8.gz
                   DEPENDS ${CMAKE_SOURCE_DIR}/deploy/crmgate.8
                   COMMENT "Compressing the man page crmgate(8)")
add_custom_target(crmgate_manpage ALL DEPENDS ${CMAKE_BINARY_DIR}/deploy/crmgate.8.gz)

install(TARGETS crmgate RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES deploy/crmgate.yaml DESTINATION ${CRMGATE_INSTALL_ETC}/crmgate)
file(GLOB CRMGATE_RULE_FILES ${CMAKE_SOURCE_DIR}/rules/*.json)
install(FILES ${CRMGATE_RULE_FILES} DESTINATION ${CRMGATE_INSTALL_ETC}/crmgate/rules)
install(FILES deploy/logrotate/crmgate DESTINATION ${CRMGATE_INSTALL_ETC}/logrotate.d)
install(FILES ${CMAKE_BINARY_DIR}/deploy/crmgate.service DESTINATION ${CRMGATE_SYSTEMD_UNIT_DIR})
install(FILES ${CMAKE_BINARY_DIR}/deploy/crmgate.8.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
install(FILES README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})

# ---- the Debian package: cpack -G DEB → crmgate_<version>_<arch>.deb ----
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME crmgate)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "validating reverse proxy for Oracle Fusion CRM's REST API")
# the summary is the first line of Description:; CPack indents this text under it
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "crmgate runs next to a CRM integration and checks every write to the
interactions resource against compiled rules before it reaches the CRM;
invalid requests are answered in Oracle's own error format. It comes with
a hardened systemd unit (Type=notify), an audit trail rotated by logrotate,
Prometheus metrics and health endpoints.")
set(CRMGATE_DEB_MAINTAINER "crmgate maintainers <crmgate@localhost>" CACHE STRING "Maintainer field of the Debian package")
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${CRMGATE_DEB_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT) # crmgate_<version>_<arch>.deb
# The shared libraries' packages, computed by dpkg-shlibdeps from the binary; adduser for the maintainer scripts
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "logrotate")
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS OFF)
# postinst creates the system user, prerm stops the service, postrm --purge removes the user and the audit
# trail. conffiles: every file under /etc, so dpkg keeps an administrator's changes on upgrades.
set(CRMGATE_CONFFILES "/etc/crmgate/crmgate.yaml\n")
foreach(rule ${CRMGATE_RULE_FILES})
    get_filename_component(rule_name ${rule} NAME)
    string(APPEND CRMGATE_CONFFILES "/etc/crmgate/rules/${rule_name}\n")
endforeach()
string(APPEND CRMGATE_CONFFILES "/etc/logrotate.d/crmgate\n")
file(WRITE ${CMAKE_BINARY_DIR}/deploy/conffiles "${CRMGATE_CONFFILES}")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_SOURCE_DIR}/deploy/debian/postinst
    ${CMAKE_SOURCE_DIR}/deploy/debian/prerm
    ${CMAKE_SOURCE_DIR}/deploy/debian/postrm
    ${CMAKE_BINARY_DIR}/deploy/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_CRMGATE_INSTALL_PREFIX "${CMAKE_INSTALL_PREFIX}")
set(CPACK_PROJECT_CONFIG_FILE ${CMAKE_SOURCE_DIR}/deploy/cpack-options.cmake)
include(CPack)
