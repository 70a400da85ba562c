# Read by cpack (CPACK_PROJECT_CONFIG_FILE). A Debian package holds /etc/crmgate and the unit under /lib: it is
# built from a build configured for the /usr prefix only, as deploy/build-deb.sh does; another prefix would
# give a package whose files and conffiles disagree.
if(CPACK_GENERATOR STREQUAL "DEB" AND NOT CPACK_CRMGATE_INSTALL_PREFIX STREQUAL "/usr")
    message(FATAL_ERROR "crmgate: this build's CMAKE_INSTALL_PREFIX is ${CPACK_CRMGATE_INSTALL_PREFIX}; a Debian "
                        "package needs /usr: run deploy/build-deb.sh (or configure with -DCMAKE_INSTALL_PREFIX=/usr)")
endif()
