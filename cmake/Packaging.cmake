# `cmake --build build --target package` makes build/hafab_<version>_amd64.deb (CPack, DEB):
#   /usr/bin/hafab, /usr/bin/kvd, /usr/bin/echo-app   the binary and the example apps, side by
#                                                    side: `hafab up` puts its own directory
#                                                    first on PATH, so `command: kvd` resolves
#   /usr/lib/systemd/system/hafab-*.service          the units of deploy/systemd (enabled by nobody)
#   /usr/share/doc/hafab/                            README, docs/*.md, the manifest format
#   /usr/share/hafab/examples/                       the example manifests
#   /usr/share/hafab/grafana/, /usr/share/hafab/prometheus/   the Grafana dashboard and the
#                                                    Prometheus alert rules of deploy/
# Dependencies are computed from the binaries by dpkg-shlibdeps (package dpkg-dev).
install(TARGETS hafab kvd echo-app RUNTIME DESTINATION bin)
install(DIRECTORY ${CMAKE_SOURCE_DIR}/deploy/systemd/ DESTINATION lib/systemd/system
        FILES_MATCHING PATTERN "*.service")
install(FILES ${CMAKE_SOURCE_DIR}/README.md ${CMAKE_SOURCE_DIR}/docs/architecture.md
              ${CMAKE_SOURCE_DIR}/docs/deploy.md ${CMAKE_SOURCE_DIR}/src/manifest/FORMAT.md
        DESTINATION share/doc/hafab)
install(FILES ${CMAKE_SOURCE_DIR}/examples/quickstart.yaml ${CMAKE_SOURCE_DIR}/examples/bad.yaml
        DESTINATION share/hafab/examples)
install(FILES ${CMAKE_SOURCE_DIR}/deploy/grafana/hafab.json DESTINATION share/hafab/grafana)
install(FILES ${CMAKE_SOURCE_DIR}/deploy/prometheus/hafab-alerts.yml
        DESTINATION share/hafab/prometheus)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME hafab)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "hafab")
set(CPACK_PACKAGE_CONTACT "hafab developers <hafab@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "high-availability fabric for unmodified applications")
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "hafab runs unmodified programs as highly available roles on a few machines:\n\
active-passive roles fail over with their data volume, load-balanced roles spread over\n\
fault domains, one stable address per role. This package holds the hafab binary\n\
(controller, agent, gateway and CLI), the example apps kvd and echo-app, systemd units\n\
(not enabled), the documentation and example manifests.")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # hafab_<version>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# The replicated store of a multi-machine deployment (docs/deploy.md); `hafab up` needs neither.
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "etcd-server, etcd-client")
set(CPACK_STRIP_FILES ON)
# postinst reloads systemd's unit files (as dh_installsystemd does) and enables nothing. No
# postrm: with one, dpkg -r would leave the package in the config-files state.
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${CMAKE_SOURCE_DIR}/deploy/debian/postinst)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)

# The package test: builds the .deb into a temporary directory, installs it with dpkg, runs
# the installed binary, removes it and checks nothing is left. It changes the machine's package
# database, so it runs alone (RESOURCE_LOCK) and only as root; it is skipped (exit 77) when
# another hafab package is installed.
add_test(NAME package_test
         COMMAND bash ${CMAKE_SOURCE_DIR}/deploy/package_test.sh ${CMAKE_BINARY_DIR}
                 ${PROJECT_VERSION})
set_tests_properties(package_test PROPERTIES LABELS package RESOURCE_LOCK dpkg
                     SKIP_RETURN_CODE 77 TIMEOUT 300)
